//! The fields each layout builds from a City and an ASN record, in the order the
//! documents have always had them (NDJSON output is compared byte for byte).

use crate::doc::{Map, Value};

/// A present value of a record's object (a missing or non-object parent: none).
fn get<'a>(rec: Option<&'a Map>, key: &str) -> Option<&'a Value> {
    rec?.get(key)
}

fn obj<'a>(rec: Option<&'a Map>, key: &str) -> Option<&'a Map> {
    get(rec, key)?.as_map()
}

/// `names.en` of a record's object.
fn en(rec: Option<&Map>) -> Option<&Value> {
    get(obj(rec, "names"), "en")
}

fn location(loc: Option<&Map>) -> Option<(Value, Value)> {
    let lat = get(loc, "latitude")?;
    let lon = get(loc, "longitude")?;
    Some((lat.clone(), lon.clone()))
}

fn lat_lon((lat, lon): (Value, Value)) -> Value {
    Value::Map(Map(vec![("lat".into(), lat), ("lon".into(), lon)]))
}

/// The first subdivision (the largest: a state, a country of the UK).
fn subdivision(city: &Map) -> Option<&Map> {
    match city.get("subdivisions")? {
        Value::List(subs) => subs.first()?.as_map(),
        _ => None,
    }
}

/// `GB` + `ENG` -> `GB-ENG` (ISO 3166-2).
fn joined(a: &Value, b: &Value) -> Value {
    let text = |v: &Value| match v {
        Value::Str(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    Value::Str(format!("{}-{}", text(a), text(b)))
}

/// ECS `<target>.geo.*` of a City (or Country) record. `country`, not
/// `registered_country`: where the address is, not who registered it.
pub fn city_fields(city: &Map) -> Map {
    let rec = Some(city);
    let loc = obj(rec, "location");
    let country = obj(rec, "country");
    let mut geo = Map::new();
    if let Some(ll) = location(loc) {
        geo.push("location", lat_lon(ll));
    }
    if let Some(v) = get(loc, "time_zone") {
        geo.push("timezone", v.clone());
    }
    if let Some(v) = get(country, "iso_code") {
        geo.push("country_iso_code", v.clone());
    }
    if let Some(v) = en(country) {
        geo.push("country_name", v.clone());
    }
    if let Some(v) = en(obj(rec, "city")) {
        geo.push("city_name", v.clone());
    }
    if let Some(sub) = subdivision(city) {
        if let Some(v) = en(Some(sub)) {
            geo.push("region_name", v.clone());
        }
        if let (Some(c), Some(s)) = (get(country, "iso_code"), sub.get("iso_code")) {
            geo.push("region_iso_code", joined(c, s));
        }
    }
    if let Some(v) = get(obj(rec, "continent"), "code") {
        geo.push("continent_code", v.clone());
    }
    if let Some(v) = get(obj(rec, "postal"), "code") {
        geo.push("postal_code", v.clone());
    }
    geo
}

/// ECS `<target>.as.*` of an ASN record.
pub fn asn_fields(asn: &Map) -> Map {
    let mut out = Map::new();
    if let Some(v) = asn.get("autonomous_system_number") {
        out.push("number", v.clone());
    }
    if let Some(v) = asn.get("autonomous_system_organization") {
        out.push(
            "organization",
            Value::Map(Map(vec![("name".into(), v.clone())])),
        );
    }
    out
}

/// logstash-filter-geoip's legacy `geoip.*` (its default City and ASN field sets). Like
/// that filter, `country_code3` holds the alpha-2 code: MaxMind has no alpha-3 codes.
pub fn logstash_fields(ip: &str, city: Option<&Map>, asn: Option<&Map>) -> Map {
    let mut out = Map::new();
    out.push("ip", Value::str(ip));
    if let Some(city) = city.filter(|c| !c.is_empty()) {
        let rec = Some(city);
        let loc = obj(rec, "location");
        let country = obj(rec, "country");
        if let Some(v) = en(obj(rec, "city")) {
            out.push("city_name", v.clone());
        }
        if let Some(v) = en(country) {
            out.push("country_name", v.clone());
        }
        if let Some(v) = get(country, "iso_code") {
            out.push("country_code2", v.clone());
            out.push("country_code3", v.clone());
        }
        if let Some(v) = get(obj(rec, "continent"), "code") {
            out.push("continent_code", v.clone());
        }
        if let Some(sub) = subdivision(city) {
            if let Some(v) = en(Some(sub)) {
                out.push("region_name", v.clone());
            }
            if let Some(v) = sub.get("iso_code") {
                out.push("region_code", v.clone());
            }
        }
        if let Some(v) = get(obj(rec, "postal"), "code") {
            out.push("postal_code", v.clone());
        }
        if let Some(v) = get(loc, "metro_code") {
            out.push("dma_code", v.clone());
        }
        if let Some(v) = get(loc, "time_zone") {
            out.push("timezone", v.clone());
        }
        if let Some(ll) = location(loc) {
            out.push("latitude", ll.0.clone());
            out.push("longitude", ll.1.clone());
            out.push("location", lat_lon(ll));
        }
    }
    if let Some(asn) = asn.filter(|a| !a.is_empty()) {
        if let Some(v) = asn.get("autonomous_system_number") {
            out.push("asn", v.clone());
        }
        if let Some(v) = asn.get("autonomous_system_organization") {
            out.push("as_org", v.clone());
        }
    }
    out
}

/// What Wazuh's own ingest pipeline asks of its geoip processor (`GeoLocation.*`), taken
/// from the ECS geo fields.
pub fn wazuh_fields(geo: &Map) -> Map {
    let mut out = Map::new();
    for (k, name) in [
        ("city_name", "city_name"),
        ("country_name", "country_name"),
        ("region_name", "region_name"),
        ("location", "location"),
    ] {
        if let Some(v) = geo.get(k) {
            out.push(name, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::write_map;

    fn json(m: &Map) -> String {
        let mut out = Vec::new();
        write_map(&mut out, m);
        String::from_utf8(out).unwrap()
    }

    fn record(pairs: Vec<(&str, Value)>) -> Map {
        Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn names(en: &str) -> Value {
        Value::Map(record(vec![(
            "names",
            Value::Map(record(vec![("en", Value::str(en))])),
        )]))
    }

    #[test]
    fn fields_in_their_order() {
        // keys in the record's own order, unlike the fields' order
        let city = record(vec![
            (
                "postal",
                Value::Map(record(vec![("code", Value::str("98354"))])),
            ),
            (
                "subdivisions",
                Value::List(vec![Value::Map(record(vec![
                    ("iso_code", Value::str("WA")),
                    (
                        "names",
                        Value::Map(record(vec![("en", Value::str("Washington"))])),
                    ),
                ]))]),
            ),
            ("city", names("Milton")),
            (
                "country",
                Value::Map(record(vec![
                    ("iso_code", Value::str("US")),
                    (
                        "names",
                        Value::Map(record(vec![("en", Value::str("United States"))])),
                    ),
                ])),
            ),
            (
                "continent",
                Value::Map(record(vec![("code", Value::str("NA"))])),
            ),
            (
                "location",
                Value::Map(record(vec![
                    ("time_zone", Value::str("America/Los_Angeles")),
                    ("metro_code", Value::Int(819)),
                    ("longitude", Value::Float(-122.3149)),
                    ("latitude", Value::Float(47.2513)),
                ])),
            ),
        ]);
        let geo = city_fields(&city);
        assert_eq!(
            json(&geo),
            r#"{"location":{"lat":47.2513,"lon":-122.3149},"timezone":"America/Los_Angeles","country_iso_code":"US","country_name":"United States","city_name":"Milton","region_name":"Washington","region_iso_code":"US-WA","continent_code":"NA","postal_code":"98354"}"#
        );
        assert_eq!(
            json(&wazuh_fields(&geo)),
            r#"{"city_name":"Milton","country_name":"United States","region_name":"Washington","location":{"lat":47.2513,"lon":-122.3149}}"#
        );
        let asn = record(vec![("autonomous_system_number", Value::Int(209))]);
        assert_eq!(json(&asn_fields(&asn)), r#"{"number":209}"#);
        assert_eq!(
            json(&logstash_fields("216.160.83.56", Some(&city), Some(&asn))),
            r#"{"ip":"216.160.83.56","city_name":"Milton","country_name":"United States","country_code2":"US","country_code3":"US","continent_code":"NA","region_name":"Washington","region_code":"WA","postal_code":"98354","dma_code":819,"timezone":"America/Los_Angeles","latitude":47.2513,"longitude":-122.3149,"location":{"lat":47.2513,"lon":-122.3149},"asn":209}"#
        );
        assert_eq!(json(&city_fields(&Map::new())), "{}");
        assert_eq!(
            json(&logstash_fields("1.0.0.1", None, None)),
            r#"{"ip":"1.0.0.1"}"#
        );
    }
}
