//! Riemann's protobuf `Msg` on the fast path: the fields a client sends, read in one pass
//! with no Python. Anything else — an unknown or deprecated field, a wrong wire type, a
//! truncation, invalid UTF-8, an attribute without its key — gives None, and the caller
//! hands the payload to the pure decoder of `streams/protocols/riemann.py`, which stays
//! the reference (its result, or its error with reason and offset). So this decoder only
//! has to agree with it where it answers.

/// One decoded event (the fields of `streams.event.Event` a Riemann event sets).
#[derive(Debug, Default, PartialEq)]
pub struct Event {
    pub time: Option<f64>,
    pub host: Option<String>,
    pub service: Option<String>,
    pub state: Option<String>,
    pub description: Option<String>,
    pub metric: Option<Metric>,
    pub ttl: Option<f64>,
    pub tags: Vec<String>,
    pub attributes: Vec<(String, String)>,
}

/// `metric_d` and `metric_f` are floats, `metric_sint64` an integer (Python keeps it an int).
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum Metric {
    Float(f64),
    Int(i64),
}

#[derive(Debug, Default, PartialEq)]
pub struct Msg {
    pub ok: Option<bool>,
    pub error: Option<String>,
    pub query: Option<String>,
    pub events: Vec<Event>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// An unsigned varint, at most 10 bytes, masked to 64 bits (as the pure decoder).
    fn varint(&mut self) -> Option<u64> {
        let mut result: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            result |= u64::from(b & 0x7F) << (7 * i); // the 10th byte's high bits fall off
            if b < 0x80 {
                return Some(result);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        let stop = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..stop)?;
        self.pos = stop;
        Some(out)
    }

    fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_string)
    }

    fn fixed32(&mut self) -> Option<f32> {
        let b = self.buf.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(f32::from_le_bytes(b.try_into().ok()?))
    }

    fn fixed64(&mut self) -> Option<f64> {
        let b = self.buf.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(f64::from_le_bytes(b.try_into().ok()?))
    }
}

fn attribute(buf: &[u8]) -> Option<(String, String)> {
    let mut r = Reader { buf, pos: 0 };
    let (mut key, mut value) = (None, String::new());
    while !r.done() {
        match r.varint()? {
            0x0A => key = Some(r.string()?),
            0x12 => value = r.string()?,
            _ => return None,
        }
    }
    Some((key?, value))
}

fn event(buf: &[u8]) -> Option<Event> {
    let mut r = Reader { buf, pos: 0 };
    let mut ev = Event::default();
    let (mut time_s, mut time_us) = (None, None);
    let (mut metric_d, mut metric_i, mut metric_f) = (None, None, None);
    let mut attributes: Vec<(String, String)> = Vec::new();
    while !r.done() {
        match r.varint()? {
            0x22 => ev.host = Some(r.string()?),
            0x1A => ev.service = Some(r.string()?),
            0x71 => metric_d = Some(r.fixed64()?),
            0x12 => ev.state = Some(r.string()?),
            0x4A => {
                let (k, v) = attribute(r.bytes()?)?;
                // a dict: a later value of a key replaces it, in the key's first place
                match attributes.iter_mut().find(|(key, _)| *key == k) {
                    Some(slot) => slot.1 = v,
                    None => attributes.push((k, v)),
                }
            }
            0x3A => ev.tags.push(r.string()?),
            0x45 => ev.ttl = Some(f64::from(r.fixed32()?)),
            0x08 => time_s = Some(r.varint()? as i64),
            0x50 => time_us = Some(r.varint()? as i64),
            0x68 => {
                let v = r.varint()?;
                metric_i = Some((v >> 1) as i64 ^ -((v & 1) as i64));
            }
            0x7D => metric_f = Some(f64::from(r.fixed32()?)),
            0x2A => ev.description = Some(r.string()?),
            _ => return None,
        }
    }
    ev.time = match (time_us, time_s) {
        (Some(us), _) => Some(crate::timestamps::micros_to_seconds(us)),
        (None, Some(s)) => Some(s as f64),
        _ => None,
    };
    ev.metric = metric_d
        .map(Metric::Float)
        .or(metric_i.map(Metric::Int))
        .or(metric_f.map(Metric::Float));
    ev.attributes = attributes;
    Some(ev)
}

fn query(buf: &[u8], current: Option<String>) -> Option<String> {
    let mut r = Reader { buf, pos: 0 };
    let mut text = current.unwrap_or_default();
    while !r.done() {
        match r.varint()? {
            0x0A => text = r.string()?,
            _ => return None,
        }
    }
    Some(text)
}

/// A `Msg`, or None where the pure decoder must answer.
pub fn decode(buf: &[u8]) -> Option<Msg> {
    let mut r = Reader { buf, pos: 0 };
    let mut msg = Msg::default();
    while !r.done() {
        match r.varint()? {
            0x32 => msg.events.push(event(r.bytes()?)?),
            0x10 => msg.ok = Some(r.varint()? != 0),
            0x1A => msg.error = Some(r.string()?),
            0x2A => msg.query = Some(query(r.bytes()?, msg.query.take())?),
            _ => return None,
        }
    }
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![field << 3 | 2, data.len() as u8];
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn a_client_event() {
        let mut ev = ld(4, b"web1");
        ev.extend(ld(3, b"cpu"));
        ev.push(0x71);
        ev.extend(0.25f64.to_le_bytes());
        ev.extend(ld(7, b"a"));
        ev.extend(ld(9, &[ld(1, b"k"), ld(2, b"v")].concat()));
        ev.extend([0x50, 0x80, 0x89, 0x7a]); // time_micros = 2000000
        ev.extend([0x68, 0x03]); // metric_sint64 = -2, not used: metric_d wins
        let msg = decode(&ld(6, &ev)).unwrap();
        let e = &msg.events[0];
        assert_eq!(e.host.as_deref(), Some("web1"));
        assert_eq!(e.metric, Some(Metric::Float(0.25)));
        assert_eq!(e.time, Some(2.0));
        assert_eq!(e.attributes, vec![("k".into(), "v".into())]);
        assert_eq!(e.tags, vec!["a".to_string()]);
    }

    #[test]
    fn the_unusual_goes_to_the_reference_decoder() {
        assert!(decode(&ld(6, &ld(4, b"\xff"))).is_none()); // invalid UTF-8
        assert!(decode(&ld(6, &ld(9, &ld(2, b"v")))).is_none()); // attribute without key
        assert!(decode(&ld(4, b"")).is_none()); // deprecated State
        assert!(decode(b"\x1a\x05abc").is_none()); // truncated
        assert!(decode(&[0x68, 0x01]).is_none()); // unknown Msg field
        assert!(decode(&[0x28, 0x01]).is_none()); // Msg.query with a varint's wire type
        assert_eq!(decode(&[0x10, 0x07]).unwrap().ok, Some(true));
    }
}

/// `streams._native.decode_riemann(payload, event_class, msg_class)`: the `Msg` with its
/// `Event`s, or None when the pure decoder must answer (see the module doc).
pub mod py {
    use pyo3::prelude::*;
    use pyo3::types::{PyDict, PyList};

    use super::{decode, Metric};

    #[pyfunction]
    pub fn decode_riemann<'py>(
        py: Python<'py>,
        payload: &[u8],
        event_class: &Bound<'py, PyAny>,
        msg_class: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(msg) = decode(payload) else {
            return Ok(None);
        };
        let new = event_class.getattr(pyo3::intern!(py, "from_parse"))?;
        let events = PyList::empty(py);
        for e in msg.events {
            let ev = new.call1((PyDict::new(py),))?;
            macro_rules! set {
                ($name:literal, $v:expr) => {
                    if let Some(v) = $v {
                        ev.setattr(pyo3::intern!(py, $name), v)?;
                    }
                };
            }
            set!("time", e.time);
            set!("host", e.host);
            set!("service", e.service);
            set!("state", e.state);
            set!("description", e.description);
            match e.metric {
                Some(Metric::Float(f)) => ev.setattr(pyo3::intern!(py, "metric"), f)?,
                Some(Metric::Int(n)) => ev.setattr(pyo3::intern!(py, "metric"), n)?,
                None => {}
            }
            set!("ttl", e.ttl);
            if !e.tags.is_empty() {
                ev.setattr(pyo3::intern!(py, "tags"), e.tags)?;
            }
            if !e.attributes.is_empty() {
                let attrs = PyDict::new(py);
                for (k, v) in e.attributes {
                    attrs.set_item(k, v)?;
                }
                ev.setattr(pyo3::intern!(py, "attributes"), attrs)?;
            }
            events.append(ev)?;
        }
        let kw = PyDict::new(py);
        kw.set_item("ok", msg.ok)?;
        kw.set_item("error", msg.error)?;
        kw.set_item("query", msg.query)?;
        kw.set_item("events", events)?;
        Ok(Some(msg_class.call((), Some(&kw))?))
    }
}
