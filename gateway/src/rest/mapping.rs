//! The one JSON mapping of the REST API, derived from the `cartella.v1` descriptors.
//!
//! JSON keeps the proto field names (snake_case), 64-bit integers are JSON numbers, enums
//! are their value names. Input is checked against the message descriptor before it is
//! converted, so every unknown field, wrong type, out-of-range number and unknown enum name is
//! reported at once with its path, the way core reports its own field violations
//! (`persona.residenza.cap`). The checks are exactly what the OpenAPI schemas say, so a
//! request the schema rejects is never sent to core, and one it accepts is never refused
//! here for its shape.
use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions};
use serde_json::{Map, Value};

/// One rejected field or parameter: its name and why, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub name: String,
    pub reason: String,
}

impl Violation {
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { name: name.into(), reason: reason.into() }
    }
}

/// Extra bounds the proto states in comments, enforced here and published in the schema.
/// Keyed by the field's full name.
pub fn bounds(field: &FieldDescriptor) -> Option<(i64, i64)> {
    match field.full_name() {
        // "page_size 1–500 (default 50)": 0 is allowed too, meaning the default.
        "cartella.v1.Page.page_size" => Some((0, 500)),
        _ => None,
    }
}

/// Inclusive range of an integer kind, as i128 so every proto integer fits.
pub fn int_range(kind: &Kind) -> Option<(i128, i128)> {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Some((i32::MIN.into(), i32::MAX.into())),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Some((i64::MIN.into(), i64::MAX.into())),
        Kind::Uint32 | Kind::Fixed32 => Some((0, u32::MAX.into())),
        Kind::Uint64 | Kind::Fixed64 => Some((0, u64::MAX.into())),
        _ => None,
    }
}

fn field_range(field: &FieldDescriptor) -> Option<(i128, i128)> {
    let base = int_range(&field.kind())?;
    Some(match bounds(field) {
        Some((lo, hi)) => (base.0.max(lo.into()), base.1.min(hi.into())),
        None => base,
    })
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() { name.to_string() } else { format!("{at}.{name}") }
}

/// Checks `value` as the JSON of message `desc`; violations are named `at.field…`.
pub fn check_message(value: &Value, desc: &MessageDescriptor, at: &str, out: &mut Vec<Violation>) {
    let Value::Object(obj) = value else {
        out.push(Violation::new(if at.is_empty() { "body" } else { at }, "must be a JSON object"));
        return;
    };
    let mut oneofs_seen: Vec<(String, String)> = Vec::new();
    for (key, v) in obj {
        // Keys come from the client: an unknown one is echoed, but never at length.
        let key_shown: String = key.chars().take(64).collect();
        let name = join(at, &key_shown);
        let Some(field) = desc.get_field_by_name(key) else {
            out.push(Violation::new(name, "is not a field of this record"));
            continue;
        };
        if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
            if let Some((_, other)) = oneofs_seen.iter().find(|(o, _)| o == oneof.name()) {
                out.push(Violation::new(name.clone(), format!("cannot be set together with {other} (only one of them)")));
            } else {
                oneofs_seen.push((oneof.name().to_string(), key.clone()));
            }
        }
        check_field(v, &field, &name, out);
    }
}

fn check_field(v: &Value, field: &FieldDescriptor, name: &str, out: &mut Vec<Violation>) {
    if field.is_map() {
        // The contract has no maps; refusing them keeps this checker honest if one appears
        // before it learns them.
        out.push(Violation::new(name, "map fields are not supported over REST"));
        return;
    }
    if field.is_list() {
        let Value::Array(items) = v else {
            out.push(Violation::new(name, "must be an array"));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            check_single(item, field, &format!("{name}[{i}]"), out);
        }
        return;
    }
    check_single(v, field, name, out);
}

fn check_single(v: &Value, field: &FieldDescriptor, name: &str, out: &mut Vec<Violation>) {
    let kind = field.kind();
    let ok = match &kind {
        Kind::Message(m) => {
            check_message(v, m, name, out);
            return;
        }
        Kind::Enum(e) => match v {
            Value::String(s) if e.get_value_by_name(s).is_some() => true,
            Value::String(_) => {
                out.push(Violation::new(name, format!("must be one of the {} values", e.name())));
                return;
            }
            _ => false,
        },
        Kind::String => v.is_string(),
        Kind::Bytes => v.is_string(),
        Kind::Bool => v.is_boolean(),
        Kind::Double | Kind::Float => v.is_number(),
        _ => {
            let Some((lo, hi)) = field_range(field) else { return };
            match v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from)) {
                Some(n) if (lo..=hi).contains(&n) => true,
                Some(_) => {
                    out.push(Violation::new(name, format!("must be between {lo} and {hi}")));
                    return;
                }
                None => false,
            }
        }
    };
    if !ok {
        out.push(Violation::new(name, format!("must be {}", kind_phrase(&kind))));
    }
}

fn kind_phrase(kind: &Kind) -> &'static str {
    match kind {
        Kind::Message(_) => "a JSON object",
        Kind::Enum(_) => "a string naming an enum value",
        Kind::String => "a string",
        Kind::Bytes => "a base64 string",
        Kind::Bool => "true or false",
        Kind::Double | Kind::Float => "a number",
        _ => "an integer",
    }
}

/// A query parameter bound to a (possibly nested) field of the request message.
#[derive(Clone, Debug)]
pub struct QueryParam {
    /// Parameter name: the leaf field's name (`page_size`, `cognome`).
    pub name: String,
    /// Dotted field path in the request message (`page.page_size`).
    pub path: String,
    pub field: FieldDescriptor,
}

/// The query parameters of a request message: every scalar, enum and repeated scalar field,
/// nested messages flattened by leaf name, except the fields in `exclude` (bound to the path).
pub fn query_params(desc: &MessageDescriptor, exclude: &[&str]) -> Result<Vec<QueryParam>, String> {
    let mut out = Vec::new();
    collect_query(desc, "", exclude, &mut out, 0)?;
    let mut names: Vec<&str> = out.iter().map(|q| q.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("{} has two query parameters named {}", desc.full_name(), w[0]));
    }
    Ok(out)
}

fn collect_query(desc: &MessageDescriptor, at: &str, exclude: &[&str], out: &mut Vec<QueryParam>, depth: usize) -> Result<(), String> {
    if depth > 4 {
        return Err(format!("{} nests too deeply for query parameters", desc.full_name()));
    }
    for f in desc.fields() {
        let path = join(at, f.name());
        if exclude.contains(&path.as_str()) {
            continue;
        }
        match f.kind() {
            Kind::Message(m) if !f.is_list() => collect_query(&m, &path, exclude, out, depth + 1)?,
            Kind::Message(_) => return Err(format!("{path}: repeated messages cannot be query parameters")),
            _ => out.push(QueryParam { name: f.name().to_string(), path, field: f.clone() }),
        }
    }
    Ok(())
}

/// A query parameter's text as the JSON value of its field (one occurrence).
pub fn query_value(raw: &str, field: &FieldDescriptor, name: &str) -> Result<Value, Violation> {
    let kind = field.kind();
    match &kind {
        Kind::String | Kind::Bytes => Ok(Value::String(raw.to_string())),
        Kind::Bool => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(Violation::new(name, "must be true or false")),
        },
        Kind::Enum(e) => {
            if e.get_value_by_name(raw).is_some() {
                Ok(Value::String(raw.to_string()))
            } else {
                Err(Violation::new(name, format!("must be one of the {} values", e.name())))
            }
        }
        Kind::Double | Kind::Float => raw
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| Violation::new(name, "must be a number")),
        Kind::Message(_) => Err(Violation::new(name, "cannot be given in the query")),
        _ => {
            let (lo, hi) = field_range(field).unwrap_or((0, 0));
            // Only plain decimal digits with an optional minus: what the schema's `integer` means.
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(Violation::new(name, "must be an integer"));
            }
            match raw.parse::<i128>() {
                Ok(n) if (lo..=hi).contains(&n) => {
                    if n < 0 {
                        i64::try_from(n).map(Value::from).map_err(|_| Violation::new(name, "is out of range"))
                    } else {
                        u64::try_from(n).map(Value::from).map_err(|_| Violation::new(name, "is out of range"))
                    }
                }
                _ => Err(Violation::new(name, format!("must be an integer between {lo} and {hi}"))),
            }
        }
    }
}

/// Sets `value` at the dotted `path` of `root`, creating objects on the way. Returns the
/// value that was there (so callers can detect a conflict with the body).
pub fn set_path(root: &mut Map<String, Value>, path: &str, value: Value) -> Option<Value> {
    let mut parts = path.split('.').peekable();
    let mut cur = root;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            return cur.insert(p.to_string(), value);
        }
        let next = cur.entry(p.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            // The body checker already reported a non-object here; replace it so the
            // conversion below cannot fail on it.
            *next = Value::Object(Map::new());
        }
        let Value::Object(m) = next else { return None };
        cur = m;
    }
    None
}

/// The value at a dotted path, if any.
pub fn get_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, p| v.get(p))
}

/// The checked JSON of a request message as a `DynamicMessage`.
pub fn to_message(value: Value, desc: &MessageDescriptor) -> Result<DynamicMessage, Violation> {
    let opts = DeserializeOptions::new().deny_unknown_fields(true);
    // Only reachable if the checker and prost-reflect disagree; the error text of serde names
    // the expected type, never the value, but is replaced anyway to keep the promise simple.
    DynamicMessage::deserialize_with_options(desc.clone(), value, &opts)
        .map_err(|_| Violation::new("body", "does not match the record's schema"))
}

/// The JSON of a response message: proto field names, 64-bit integers as numbers, enum
/// names, and every field without presence written out even when it holds its default.
pub fn to_json(msg: &DynamicMessage) -> Result<Value, serde_json::Error> {
    let opts = SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false).skip_default_fields(false);
    msg.serialize_with_options(serde_json::value::Serializer, &opts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use prost_reflect::DescriptorPool;
    use serde_json::json;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(cartella_proto::v1::FILE_DESCRIPTOR_SET).unwrap()
    }

    #[test]
    fn every_violation_is_named_at_once() {
        let p = pool();
        let persona = p.get_message_by_name("cartella.v1.Persona").unwrap();
        let body = json!({
            "cognome": 3,
            "sesso": "SESSO_ALTRO",
            "eta": 40,
            "residenza": {"cap": "00100", "via": "x"},
            "meta": {"version": 1.5},
        });
        let mut out = Vec::new();
        check_message(&body, &persona, "persona", &mut out);
        let names: Vec<&str> = out.iter().map(|v| v.name.as_str()).collect();
        for n in ["persona.cognome", "persona.sesso", "persona.eta", "persona.residenza.via", "persona.meta.version"] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn oneof_and_ranges() {
        let p = pool();
        let v = p.get_message_by_name("cartella.v1.Valutazione").unwrap();
        let mut out = Vec::new();
        check_message(&json!({"sina": {}, "sinba": {"luogo_vita": 4_294_967_296_i64}}), &v, "valutazione", &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        let ok = json!({"cartella_id": "x", "sina": {"mobilita": 1, "invalidita_civile": [1, 2]}});
        let mut out = Vec::new();
        check_message(&ok, &v, "valutazione", &mut out);
        assert!(out.is_empty(), "{out:?}");
        let m = to_message(ok, &v).unwrap();
        let back = to_json(&m).unwrap();
        assert_eq!(back["sina"]["invalidita_civile"], json!([1, 2]));
        assert_eq!(back["note"], json!(""));
    }

    #[test]
    fn query_params_are_flattened_and_typed() {
        let p = pool();
        let req = p.get_message_by_name("cartella.v1.ListCartelleRequest").unwrap();
        let qs = query_params(&req, &[]).unwrap();
        let names: Vec<&str> = qs.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["page_size", "page_token", "persona_id", "ufficio", "area_utenza", "stato"]);
        let size = &qs[0];
        assert_eq!(size.path, "page.page_size");
        assert_eq!(query_value("20", &size.field, "page_size").unwrap(), json!(20));
        assert!(query_value("501", &size.field, "page_size").is_err());
        assert!(query_value("+2", &size.field, "page_size").is_err());
        assert!(query_value("", &size.field, "page_size").is_err());
        assert!(query_value("STATO_CARTELLA_APERTA", &qs[5].field, "stato").is_ok());
        assert!(query_value("aperta", &qs[5].field, "stato").is_err());
        let int64 = p.get_message_by_name("cartella.v1.Prestazione").unwrap().get_field_by_name("importo").unwrap();
        assert_eq!(query_value("-9223372036854775808", &int64, "x").unwrap(), json!(i64::MIN));
        assert!(query_value("9223372036854775808", &int64, "x").is_err());
    }

    #[test]
    fn set_path_creates_objects() {
        let mut root = Map::new();
        assert!(set_path(&mut root, "persona.meta.id", json!("a")).is_none());
        assert_eq!(set_path(&mut root, "persona.meta.id", json!("b")), Some(json!("a")));
        assert_eq!(get_path(&Value::Object(root), "persona.meta.id"), Some(&json!("b")));
    }
}
