//! One MaxMind DB file, memory-mapped, its records decoded into the document tree.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::{MaxMindDbError, Mmap, Reader};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::doc::{Map, Value};

pub struct Mmdb {
    reader: Reader<Mmap>,
}

/// Why a file is not a usable database, or a lookup failed.
#[derive(Debug)]
pub enum MmdbError {
    Io(std::io::Error),
    Invalid(String),
}

impl fmt::Display for MmdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmdbError::Io(e) => e.fmt(f),
            MmdbError::Invalid(m) => f.write_str(m),
        }
    }
}

impl From<MaxMindDbError> for MmdbError {
    fn from(e: MaxMindDbError) -> Self {
        match e {
            MaxMindDbError::Io(e) => MmdbError::Io(e),
            other => MmdbError::Invalid(other.to_string()),
        }
    }
}

impl Mmdb {
    /// Maps the file and reads its metadata. Like every reader of the format that maps
    /// its file, it must be replaced by rename, never written in place: geoipupdate's way.
    pub fn open(path: &Path) -> Result<Mmdb, MmdbError> {
        // SAFETY: the mapped file is never written by us; one changed in place by someone
        // else is the documented misuse above (the C reader behind Python's maxminddb
        // had the same contract).
        let reader = unsafe { Reader::open_mmap(path) }?;
        Ok(Mmdb { reader })
    }

    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    pub fn node_count(&self) -> u32 {
        self.reader.metadata().node_count
    }

    pub fn ip_version(&self) -> u16 {
        self.reader.metadata().ip_version
    }

    /// The record of an address (None: not in the database; an IPv6 address in an
    /// IPv4-only database is not in it either). Err for a damaged file.
    pub fn get(&self, ip: IpAddr) -> Result<Option<Value>, MmdbError> {
        if ip.is_ipv6() && self.ip_version() == 4 {
            return Ok(None);
        }
        let found = self.reader.lookup(ip)?;
        Ok(found.decode::<Record>()?.map(|r| r.0))
    }
}

/// A record as it is, whatever its schema: what Python's reader gave (a dict).
struct Record(Value);

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RecordVisitor).map(Record)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a MaxMind DB value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::BigInt(v.to_string()), Value::Int))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::BigInt(v.to_string()), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::str(v))
    }

    /// The tree has no bytes; no GeoIP2 field is bytes (shown as text if one ever is).
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Record(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut m = Map(Vec::with_capacity(access.size_hint().unwrap_or(0)));
        while let Some((k, Record(v))) = access.next_entry::<String, Record>()? {
            m.insert(&k, v);
        }
        Ok(Value::Map(m))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    pub fn test_db(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/data/geoip/{name}"))
    }

    #[test]
    fn reads_records_as_they_are() {
        let db = Mmdb::open(&test_db("GeoIP2-City-Test.mmdb")).unwrap();
        assert_eq!(db.database_type(), "GeoIP2-City");
        assert_eq!(db.ip_version(), 6);
        assert!(db.node_count() > 0 && db.build_epoch() > 0);
        let rec = db.get("81.2.69.142".parse().unwrap()).unwrap().unwrap();
        let m = rec.as_map().unwrap();
        let city = m.get("city").unwrap().as_map().unwrap();
        let en = city.get("names").unwrap().as_map().unwrap().get("en");
        assert_eq!(en, Some(&Value::str("London")));
        let loc = m.get("location").unwrap().as_map().unwrap();
        assert_eq!(loc.get("latitude"), Some(&Value::Float(51.5142)));
        assert_eq!(db.get("10.0.0.1".parse().unwrap()).unwrap(), None);
    }

    #[test]
    fn damaged_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("streams-mmdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = std::fs::read(test_db("GeoIP2-City-Test.mmdb")).unwrap();
        for (name, data) in [
            ("empty", Vec::new()),
            ("garbage", b"garbage".repeat(100)),
            ("truncated", good[..5000].to_vec()),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, data).unwrap();
            assert!(Mmdb::open(&p).is_err(), "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            Mmdb::open(&dir.join("missing")),
            Err(MmdbError::Io(_))
        ));
    }
}
