//! `config.json` read the way Go's `encoding/json` reads it into debrid-mount-monitor's structs,
//! so that every file it loaded loads here: keys match case-insensitively (`HttpPort`), unknown
//! keys are ignored (with a warning naming the closest known key), and a key given twice takes
//! its last value, a nested object or array being decoded *into* what the first one set, as Go
//! does. The result is a plain JSON document with the canonical key names, which serde then
//! reads strictly into the config structs.
//!
//! Go decodes JSON `null` into a string, number or struct field as "leave it as it is" and into a
//! slice as "empty it"; the same here. Two corner cases differ, both towards loading: a `null`
//! duration is an error in Go and the default here, and a `null` after `"enabled": true` unsets
//! that pointer field in Go and is ignored here.

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The keys of one level of the document, and of the objects nested under some of them (an
/// object, or an array of objects).
#[derive(Debug, Clone)]
pub struct Schema {
    fields: &'static [&'static str],
    nested: Vec<(&'static str, Schema)>,
    /// Old names of keys, suggested whatever their spelling: (old, current).
    renamed: Vec<(&'static str, &'static str)>,
}

impl Schema {
    /// The keys serde accepts for `T` (renamed keys and aliases included), so the schema can
    /// never drift from the struct.
    pub fn of<T: Deserialize<'static>>() -> Schema {
        let mut catcher = FieldCatcher(&[]);
        let _ = T::deserialize(&mut catcher);
        Schema {
            fields: catcher.0,
            nested: Vec::new(),
            renamed: Vec::new(),
        }
    }

    /// `old` is what `current` used to be called: an unknown `old` suggests `current`.
    pub fn renamed(mut self, old: &'static str, current: &'static str) -> Schema {
        self.renamed.push((old, current));
        self
    }

    /// `key` holds an object (or an array of objects) with `schema`'s keys.
    pub fn with(mut self, key: &'static str, schema: Schema) -> Schema {
        self.nested.push((key, schema));
        self
    }

    /// The canonical name of `key`: an exact match, else the first that matches ignoring case.
    fn field(&self, key: &str) -> Option<&'static str> {
        self.fields
            .iter()
            .find(|f| **f == key)
            .or_else(|| self.fields.iter().find(|f| fold(f) == fold(key)))
            .copied()
    }

    fn nested(&self, key: &str) -> Option<&Schema> {
        self.nested.iter().find(|(k, _)| *k == key).map(|(_, s)| s)
    }

    /// The known key most like `key`, if any is alike enough to be worth suggesting.
    fn closest(&self, key: &str) -> Option<&'static str> {
        if let Some((_, current)) = self.renamed.iter().find(|(old, _)| fold(old) == fold(key)) {
            return Some(current);
        }
        let key = fold(key);
        self.fields
            .iter()
            .map(|f| (strsim::jaro_winkler(&fold(f), &key), *f))
            .filter(|(score, _)| *score >= 0.7)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, f)| f)
    }
}

/// Case folding as Go's `bytes.EqualFold` compares: `K` (the Kelvin sign) is `k`, `ſ` is `s`.
fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_uppercase)
        .collect::<String>()
        .to_lowercase()
}

/// Reads `text` as Go would into a struct with `schema`'s keys. Returns the document with
/// canonical keys, and one warning per key that was ignored. A syntax error is an error, as in
/// Go; a value of the wrong type is left for serde to refuse.
pub fn normalize(text: &str, schema: &Schema) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut document = serde_json::Deserializer::from_str(text);
    let raw = Raw::deserialize(&mut document)?;
    document.end()?;
    let mut warnings = Vec::new();
    let value = match raw {
        Raw::Object(entries) => {
            let mut map = Map::new();
            decode_object(entries, schema, "", &mut map, &mut warnings);
            Value::Object(map)
        }
        // A top-level `null` leaves the struct as it is in Go: an empty config.
        Raw::Null => Value::Object(Map::new()),
        other => other.plain(),
    };
    Ok((value, warnings))
}

fn decode_object(
    entries: Vec<(String, Raw)>,
    schema: &Schema,
    at: &str,
    into: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    for (key, raw) in entries {
        let Some(name) = schema.field(&key) else {
            let hint = match schema.closest(&key) {
                Some(known) => format!("; did you mean `{at}{known}`?"),
                None => format!("; the keys here are {}", list(schema.fields)),
            };
            warnings.push(format!("unknown key `{at}{key}` ignored{hint}"));
            continue;
        };
        let path = format!("{at}{name}");
        let existing = into.remove(name);
        if let Some(value) = assign(existing, raw, schema.nested(name), &path, warnings) {
            into.insert(name.to_owned(), value);
        }
    }
}

/// The field's value after Go decodes `raw` into it (`existing` is what it held before).
fn assign(
    existing: Option<Value>,
    raw: Raw,
    schema: Option<&Schema>,
    path: &str,
    warnings: &mut Vec<String>,
) -> Option<Value> {
    match (raw, schema) {
        (Raw::Null, _) => match existing {
            Some(Value::Array(_)) => None,
            other => other,
        },
        (Raw::Object(entries), Some(schema)) => {
            let mut map = match existing {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            decode_object(entries, schema, &format!("{path}."), &mut map, warnings);
            Some(Value::Object(map))
        }
        // Go reuses the slice's elements: the n-th object of a repeated key is decoded into the
        // n-th element the earlier one made, and the slice takes the new length.
        (Raw::Array(items), Some(schema)) => {
            let mut old = match existing {
                Some(Value::Array(old)) => old.into_iter(),
                _ => Vec::new().into_iter(),
            };
            let merged = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let at = format!("{path}[{i}]");
                    assign(old.next(), item, Some(schema), &at, warnings).unwrap_or(Value::Null)
                })
                .collect();
            Some(Value::Array(merged))
        }
        (raw, _) => Some(raw.plain()),
    }
}

fn list(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A JSON value with every key kept, in order, duplicates included (serde_json's `Value` keeps
/// only the last of a repeated key, and forgets which came first).
#[derive(Debug)]
enum Raw {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Raw>),
    Object(Vec<(String, Raw)>),
}

impl Raw {
    /// As a plain JSON value: a repeated key takes its last value.
    fn plain(self) -> Value {
        match self {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(b),
            Raw::Number(n) => Value::Number(n),
            Raw::String(s) => Value::String(s),
            Raw::Array(items) => Value::Array(items.into_iter().map(Raw::plain).collect()),
            Raw::Object(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, v.plain()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        // JSON has no NaN or infinity, so this always has a number.
        Ok(serde_json::Number::from_f64(v).map_or(Raw::Null, Raw::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Raw>()? {
            entries.push(entry);
        }
        Ok(Raw::Object(entries))
    }
}

/// A deserializer that only records the field names a derived struct asks for.
struct FieldCatcher(&'static [&'static str]);

impl<'de> de::Deserializer<'de> for &mut FieldCatcher {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only structs are introspected"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Top {
        http_port: Option<i64>,
        failure_threshold: Option<i64>,
        #[serde(alias = "timeout")]
        read_timeout: Option<String>,
        mounts: Option<Vec<Mount>>,
        watchdog: Option<Dog>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Mount {
        name: Option<String>,
        path: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Dog {
        enabled: Option<bool>,
        max_retries: Option<i64>,
    }

    fn schema() -> Schema {
        Schema::of::<Top>()
            .renamed("debounceThreshold", "failureThreshold")
            .with("mounts", Schema::of::<Mount>())
            .with("watchdog", Schema::of::<Dog>())
    }

    fn go(text: &str) -> (Value, Vec<String>) {
        normalize(text, &schema()).unwrap()
    }

    #[test]
    fn schema_comes_from_the_struct() {
        let s = schema();
        assert_eq!(s.field("httpPort"), Some("httpPort"));
        assert_eq!(s.field("timeout"), Some("timeout"), "aliases are keys too");
        assert_eq!(s.field("HTTPPORT"), Some("httpPort"));
        assert_eq!(s.field("http_port"), None);
    }

    #[test]
    fn keys_match_ignoring_case() {
        let (v, warnings) = go(r#"{"HttpPort": 9000, "MOUNTS": [{"Path": "/x", "NAME": "a"}]}"#);
        assert_eq!(
            v,
            json!({"httpPort": 9000, "mounts": [{"path": "/x", "name": "a"}]})
        );
        assert!(warnings.is_empty());
        // Go's folding: the Kelvin sign is a k.
        assert_eq!(schema().field("watchdo\u{212a}"), None);
        assert_eq!(fold("\u{212a}"), "k");
        assert_eq!(fold("\u{17f}"), "s");
    }

    #[test]
    fn unknown_keys_are_warnings_with_the_closest_key() {
        let (v, warnings) = go(
            r#"{"$schema": "x", "faliureThreshold": 2, "mounts": [{"path": "/x", "nmae": "a"}],
                "watchdog": {"maxRetry": 1}}"#,
        );
        assert_eq!(v, json!({"mounts": [{"path": "/x"}], "watchdog": {}}));
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(
            warnings[0].starts_with("unknown key `$schema` ignored; the keys here are `httpPort`"),
            "{}",
            warnings[0]
        );
        assert_eq!(
            warnings[1],
            "unknown key `faliureThreshold` ignored; did you mean `failureThreshold`?"
        );
        assert_eq!(
            warnings[2],
            "unknown key `mounts[0].nmae` ignored; did you mean `mounts[0].name`?"
        );
        assert_eq!(
            warnings[3],
            "unknown key `watchdog.maxRetry` ignored; did you mean `watchdog.maxRetries`?"
        );
        let (_, warnings) = go(r#"{"debounceThreshold": 3}"#);
        assert!(
            warnings[0].contains("did you mean `failureThreshold`?"),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_last_of_a_repeated_key_wins_and_merges_like_go() {
        let (v, _) = go(r#"{"httpPort": 1, "httpPort": 2, "HTTPPORT": 3}"#);
        assert_eq!(v, json!({"httpPort": 3}));
        // Objects merge; arrays of objects merge element by element and take the new length.
        let (v, _) = go(
            r#"{"watchdog": {"enabled": true, "maxRetries": 5}, "watchdog": {"maxRetries": 7},
                "mounts": [{"name": "a", "path": "/a"}, {"path": "/b"}], "mounts": [{"path": "/c"}]}"#,
        );
        assert_eq!(
            v,
            json!({"watchdog": {"enabled": true, "maxRetries": 7},
                   "mounts": [{"name": "a", "path": "/c"}]})
        );
    }

    #[test]
    fn null_leaves_a_value_and_empties_an_array() {
        let (v, _) =
            go(r#"{"httpPort": 1, "httpPort": null, "mounts": [{"path": "/a"}], "mounts": null}"#);
        assert_eq!(v, json!({"httpPort": 1}));
        let (v, _) = go("null");
        assert_eq!(v, json!({}));
        let (v, _) = go(r#"{"mounts": [null, {"path": "/b"}]}"#);
        assert_eq!(v, json!({"mounts": [null, {"path": "/b"}]}));
    }

    #[test]
    fn syntax_errors_and_trailing_data_are_errors() {
        assert!(normalize(r#"{"httpPort": "#, &schema()).is_err());
        assert!(normalize("{} {}", &schema()).is_err());
        assert!(normalize(r#"{"a": 1,}"#, &schema()).is_err());
    }
}
