//! JSON bodies read strictly: one key once per object, at any depth.
//! serde_json lets the last of two equal keys win, so a body could say one
//! thing to a proxy, a log or a signature check that reads the first and
//! another to the node; refusing such bodies removes the ambiguity.

use crate::error::ApiError;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// What the strict pass learnt about a body: whether it is an object.
struct Checked {
    object: bool,
}

impl<'de> de::Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked { object: false })
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked { object: false })
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked { object: false })
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked { object: false })
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked { object: false })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked { object: false })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked { object: false })
    }

    /// Only the keys of the objects open on the path are held, never the
    /// values: a large body is not copied.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!(
                    "the key `{shown}` appears twice in one object"
                )));
            }
            seen.insert(key);
            map.next_value::<Checked>()?;
        }
        Ok(Checked { object: true })
    }
}

/// Reads a JSON object as `T`. Syntax errors and duplicate keys are
/// `malformed-json`, in our words with the position; a value that is not an
/// object (serde's derived structs would take an array) or has the wrong
/// shape is `invalid` (`ApiError::InvalidRequest` for the node, the hub's
/// own for reports).
pub fn parse_object<T: DeserializeOwned>(
    body: &[u8],
    invalid: fn(String) -> ApiError,
) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let checked = <Checked as de::Deserialize>::deserialize(&mut de)
        .and_then(|checked| de.end().map(|()| checked))
        .map_err(malformed)?;
    if !checked.object {
        return Err(invalid("the body must be a JSON object".into()));
    }
    serde_json::from_slice(body).map_err(|e| invalid(shape(&e)))
}

/// A syntax error or duplicate key, with where it is; serde_json's own
/// wording goes to the log only.
fn malformed(e: serde_json::Error) -> ApiError {
    tracing::debug!(error = %e, "malformed JSON body");
    let what = match e.classify() {
        serde_json::error::Category::Eof => "the body ends early".to_string(),
        serde_json::error::Category::Data => {
            // Only the duplicate check raises data errors in this pass;
            // its message is ours, before serde_json's position suffix.
            let text = e.to_string();
            text.split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string()
        }
        _ => "unexpected character".to_string(),
    };
    ApiError::MalformedJson(format!("{what} (line {}, column {})", e.line(), e.column()))
}

/// A well-formed body of the wrong shape. serde's derived messages name
/// the fields and values of our own API (`missing field \`username\``),
/// which a client needs; kept, with the position in our words.
fn shape(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let what = text.split(" at line ").next().unwrap_or_default();
    format!("{what} (line {}, column {})", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Login {
        #[allow(dead_code)]
        username: String,
    }

    fn code(body: &str) -> &'static str {
        parse_object::<serde_json::Value>(body.as_bytes(), ApiError::InvalidRequest)
            .err()
            .map_or("ok", |e| e.code())
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(code(r#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#), "ok");
        assert_eq!(code(r#"{"a":1,"a":2}"#), "malformed-json");
        assert_eq!(code(r#"{"a":{"c":[{"d":1,"d":2}]}}"#), "malformed-json");
        // Equal keys in sibling objects are fine.
        assert_eq!(code(r#"{"a":{"x":1},"b":{"x":1}}"#), "ok");
        let err = parse_object::<Login>(
            br#"{"username":"ana","username":"ben"}"#,
            ApiError::InvalidRequest,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("`username` appears twice"), "{err}");
    }

    #[test]
    fn errors_are_in_our_words() {
        assert_eq!(code("[1]"), "invalid-request");
        assert_eq!(code("{\"a\":"), "malformed-json");
        assert_eq!(code("{} x"), "malformed-json");
        let e = parse_object::<Login>(b"{\"a\" 1}", ApiError::InvalidRequest)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            "the body is not valid JSON: unexpected character (line 1, column 6)"
        );
    }
}
