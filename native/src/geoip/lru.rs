//! A bounded least-recently-used map from text keys, O(1) per hit and per miss: a hash
//! index into slots that form a doubly linked list, most recent first. Keys come from
//! the documents (an attacker chooses them), so the index keeps std's seeded SipHash.

use std::collections::HashMap;
use std::sync::Arc;

const NIL: usize = usize::MAX;

struct Slot<V> {
    key: Arc<str>,
    value: V,
    prev: usize,
    next: usize,
}

pub struct Lru<V> {
    capacity: usize,
    index: HashMap<Arc<str>, usize>,
    slots: Vec<Slot<V>>,
    head: usize, // the most recently used
    tail: usize, // the next one out
}

impl<V> Lru<V> {
    /// A cache of at most `capacity` entries; 0 keeps nothing.
    pub fn new(capacity: usize) -> Lru<V> {
        Lru {
            capacity,
            index: HashMap::new(),
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    /// The value of `key`, which becomes the most recently used.
    pub fn get(&mut self, key: &str) -> Option<&V> {
        let i = *self.index.get(key)?;
        if i != self.head {
            self.unlink(i);
            self.link_front(i);
        }
        Some(&self.slots[i].value)
    }

    /// Adds a key that is not in the cache, the least recently used one out when full.
    pub fn insert(&mut self, key: &str, value: V) {
        if self.capacity == 0 {
            return;
        }
        debug_assert!(!self.index.contains_key(key));
        let key: Arc<str> = Arc::from(key);
        let i = if self.slots.len() < self.capacity {
            self.slots.push(Slot {
                key: key.clone(),
                value,
                prev: NIL,
                next: NIL,
            });
            self.slots.len() - 1
        } else {
            let i = self.tail;
            self.unlink(i);
            let slot = &mut self.slots[i];
            self.index.remove(&slot.key);
            slot.key = key.clone();
            slot.value = value;
            i
        };
        self.index.insert(key, i);
        self.link_front(i);
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n].prev = prev,
        }
    }

    fn link_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        match self.head {
            NIL => self.tail = i,
            h => self.slots[h].prev = i,
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(c: &mut Lru<u32>, key: &str) -> Option<u32> {
        c.get(key).copied()
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let mut c = Lru::new(2);
        c.insert("a", 1);
        c.insert("b", 2);
        assert_eq!(g(&mut c, "a"), Some(1)); // b is now the oldest
        c.insert("c", 3);
        assert_eq!((g(&mut c, "b"), c.len()), (None, 2));
        assert_eq!((g(&mut c, "a"), g(&mut c, "c")), (Some(1), Some(3)));
        c.insert("d", 4); // a is the oldest
        assert_eq!(
            (g(&mut c, "a"), g(&mut c, "c"), g(&mut c, "d")),
            (None, Some(3), Some(4))
        );
        c.clear();
        assert!(c.len() == 0 && g(&mut c, "c").is_none());
        c.insert("e", 5);
        assert_eq!(g(&mut c, "e"), Some(5));
    }

    #[test]
    fn capacity_one_and_zero() {
        let mut c = Lru::new(1);
        c.insert("a", 1);
        c.insert("b", 2);
        assert_eq!(
            (g(&mut c, "a"), g(&mut c, "b"), c.len()),
            (None, Some(2), 1)
        );
        let mut off = Lru::new(0);
        off.insert("a", 1);
        assert_eq!((g(&mut off, "a"), off.len()), (None, 0));
    }

    #[test]
    fn agrees_with_a_plain_model() {
        // a pseudo-random workload against a vector kept in recency order
        let mut c = Lru::new(5);
        let mut model: Vec<(String, u32)> = Vec::new();
        let mut x: u32 = 7;
        for step in 0..5000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let key = format!("k{}", (x >> 16) % 9);
            let want = model.iter().position(|(k, _)| *k == key).map(|at| {
                let e = model.remove(at);
                let v = e.1;
                model.insert(0, e);
                v
            });
            assert_eq!(c.get(&key).copied(), want, "step {step}");
            if want.is_none() {
                c.insert(&key, step);
                model.insert(0, (key, step));
                model.truncate(5);
            }
            assert_eq!(c.len(), model.len());
        }
    }
}
