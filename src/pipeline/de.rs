//! serde over the located YAML tree: kind-specific stage settings are plain typed structs
//! (`#[serde(deny_unknown_fields)]`), and every error still names the line, column and
//! field path of the value that caused it. One struct per kind instead of hand checks.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::yaml::{join, Node, Pos};

/// An error at a place in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub pos: Option<Pos>,
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// Keys that would have been accepted, for "did you mean".
    pub expected: Vec<&'static str>,
    unknown_field: bool,
    missing_field: Option<&'static str>,
}

impl DeError {
    fn new(message: String) -> Self {
        DeError { pos: None, field: None, message, hint: None, expected: Vec::new(), unknown_field: false, missing_field: None }
    }

    pub fn is_unknown_key(&self) -> bool {
        self.unknown_field
    }

    /// Fills in where the error happened, unless something deeper already did.
    fn at(mut self, pos: Pos, field: &str) -> Self {
        if self.pos.is_none() {
            self.pos = Some(pos);
            self.field = Some(match self.missing_field {
                Some(name) => join(field, name),
                None => field.to_string(),
            });
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("must be {exp}, not {}", describe_unexpected(&unexp)))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::new("unknown key".into());
        e.unknown_field = true;
        e.expected = expected.to_vec();
        let _ = field;
        e
    }

    fn missing_field(field: &'static str) -> Self {
        let mut e = DeError::new("required key is missing".into());
        e.missing_field = Some(field);
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::new(format!("`{variant}` is not one of {}", quoted(expected)));
        e.expected = expected.to_vec();
        e.hint = super::diagnostic::nearest(variant, expected.iter().copied()).map(|n| format!("did you mean `{n}`?"));
        e
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn describe_unexpected(u: &de::Unexpected<'_>) -> String {
    match u {
        de::Unexpected::Str(s) => format!("\"{s}\""),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Map => "a mapping".into(),
        de::Unexpected::Unit => "empty".into(),
        other => other.to_string(),
    }
}

/// Deserialises `node` (found at `field`) into `T`. The error is large (it carries its
/// place and the accepted keys) but made once per bad file, never in a loop.
#[allow(clippy::result_large_err)]
pub fn from_node<T: DeserializeOwned>(node: &Node, field: &str) -> Result<T, DeError> {
    T::deserialize(NodeDe { node, field: field.to_string() }).map_err(|e| e.at(node.pos(), field))
}

struct NodeDe<'n> {
    node: &'n Node,
    field: String,
}

impl NodeDe<'_> {
    fn scalar(&self) -> Option<(&str, bool)> {
        match self.node {
            Node::Scalar { text, plain, .. } => Some((text.as_str(), *plain)),
            _ => None,
        }
    }

    fn unexpected(&self) -> de::Unexpected<'_> {
        match self.node {
            Node::Seq { .. } => de::Unexpected::Seq,
            Node::Map { .. } => de::Unexpected::Map,
            Node::Scalar { .. } if self.node.is_null() => de::Unexpected::Unit,
            Node::Scalar { text, .. } => de::Unexpected::Str(text),
        }
    }

    fn err(&self, e: DeError) -> DeError {
        e.at(self.node.pos(), &self.field)
    }
}

macro_rules! parse_number {
    ($name:ident, $ty:ty, $visit:ident, $what:literal) => {
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match self.scalar() {
                Some((text, true)) => match text.parse::<$ty>() {
                    Ok(n) => visitor.$visit(n),
                    Err(_) => Err(self.err(DeError::new(format!("must be {}, not {}", $what, self.node.describe())))),
                },
                _ => Err(self.err(DeError::new(format!("must be {}, not {}", $what, self.node.describe())))),
            }
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Node::Map { .. } => self.deserialize_map(visitor),
            Node::Seq { .. } => self.deserialize_seq(visitor),
            Node::Scalar { .. } if self.node.is_null() => visitor.visit_unit(),
            Node::Scalar { text, plain: true, .. } => {
                if let Ok(b) = text.parse::<bool>() {
                    visitor.visit_bool(b)
                } else if let Ok(i) = text.parse::<i64>() {
                    visitor.visit_i64(i)
                } else if let Ok(f) = text.parse::<f64>() {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(text)
                }
            }
            Node::Scalar { text, .. } => visitor.visit_str(text),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some(("true", true)) => visitor.visit_bool(true),
            Some(("false", true)) => visitor.visit_bool(false),
            _ => Err(self.err(DeError::new(format!("must be true or false, not {}", self.node.describe())))),
        }
    }

    parse_number!(deserialize_u8, u8, visit_u8, "a whole number from 0 to 255");
    parse_number!(deserialize_u16, u16, visit_u16, "a whole number from 0 to 65535");
    parse_number!(deserialize_u32, u32, visit_u32, "a non-negative whole number");
    parse_number!(deserialize_u64, u64, visit_u64, "a non-negative whole number");
    parse_number!(deserialize_i8, i8, visit_i8, "a whole number");
    parse_number!(deserialize_i16, i16, visit_i16, "a whole number");
    parse_number!(deserialize_i32, i32, visit_i32, "a whole number");
    parse_number!(deserialize_i64, i64, visit_i64, "a whole number");
    parse_number!(deserialize_f32, f32, visit_f32, "a number");
    parse_number!(deserialize_f64, f64, visit_f64, "a number");

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    /// Any non-null scalar reads as text: `port: 8080` may feed a string field.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.as_text() {
            Some(text) => visitor.visit_str(text),
            None => Err(self.err(de::Error::invalid_type(self.unexpected(), &visitor))),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_unit()
        } else {
            Err(self.err(de::Error::invalid_type(self.unexpected(), &visitor)))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Node::Seq { items, .. } => {
                visitor.visit_seq(Seq { items: items.iter().enumerate(), field: &self.field })
            }
            _ => Err(self.err(de::Error::invalid_type(self.unexpected(), &visitor))),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Node::Map { entries, .. } => {
                let value = visitor.visit_map(Map { entries: entries.iter(), field: &self.field, current: None })?;
                Ok(value)
            }
            // `env:` with nothing under it reads as an empty mapping.
            _ if self.node.is_null() => visitor.visit_map(Map { entries: [].iter(), field: &self.field, current: None }),
            _ => Err(self.err(de::Error::invalid_type(self.unexpected(), &visitor))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let pos = self.node.pos();
        let field = self.field.clone();
        self.deserialize_map(visitor).map_err(|e| e.at(pos, &field))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.node {
            _ if self.node.is_null() => Err(self.err(DeError::new(format!("must be one of {}, but is empty", quoted(variants))))),
            Node::Scalar { text, .. } => visitor.visit_enum(text.as_str().into_deserializer()).map_err(|e: DeError| self.err(e)),
            Node::Map { entries, .. } if entries.len() == 1 => {
                let (k, v) = &entries[0];
                let name = k.as_text().unwrap_or_default().to_string();
                let field = join(&self.field, &name);
                visitor.visit_enum(Enum { name, value: v, field }).map_err(|e| self.err(e))
            }
            _ => Err(self.err(DeError::new(format!("must be one choice, not {}", self.node.describe())))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct Seq<'n, 'f> {
    items: std::iter::Enumerate<std::slice::Iter<'n, Node>>,
    field: &'f str,
}

impl<'de> SeqAccess<'de> for Seq<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some((i, node)) = self.items.next() else { return Ok(None) };
        let field = format!("{}[{i}]", self.field);
        seed.deserialize(NodeDe { node, field: field.clone() }).map(Some).map_err(|e| e.at(node.pos(), &field))
    }
}

struct Map<'n, 'f> {
    entries: std::slice::Iter<'n, (Node, Node)>,
    field: &'f str,
    current: Option<&'n (Node, Node)>,
}

impl<'de, 'n> MapAccess<'de> for Map<'n, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else { return Ok(None) };
        self.current = Some(entry);
        let key = &entry.0;
        let field = join(self.field, key.as_text().unwrap_or_default());
        seed.deserialize(NodeDe { node: key, field: field.clone() }).map(Some).map_err(|e| e.at(key.pos(), &field))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, value) = self.current.expect("value after key");
        let field = join(self.field, key.as_text().unwrap_or_default());
        seed.deserialize(NodeDe { node: value, field: field.clone() }).map_err(|e| e.at(value.pos(), &field))
    }
}

struct Enum<'n> {
    name: String,
    value: &'n Node,
    field: String,
}

impl<'de, 'n> de::EnumAccess<'de> for Enum<'n> {
    type Error = DeError;
    type Variant = NodeDe<'n>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, NodeDe<'n>), DeError> {
        let de: de::value::StrDeserializer<'_, DeError> = self.name.as_str().into_deserializer();
        let v = seed.deserialize(de)?;
        Ok((v, NodeDe { node: self.value, field: self.field }))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

/// A duration written as text (`30s`, `5m`, `250ms`), checked where it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub struct DurationText(pub std::time::Duration);

impl From<DurationText> for String {
    fn from(d: DurationText) -> String {
        humantime::format_duration(d.0).to_string()
    }
}

impl<'de> serde::Deserialize<'de> for DurationText {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match humantime::parse_duration(&text) {
            // Times are computed from it at run time (`expires`: now + d), where a huge
            // one would overflow.
            Ok(v) if v > super::limits::MAX_DURATION => {
                Err(de::Error::custom(super::limits::check_duration(v, super::limits::MAX_DURATION).unwrap_err()))
            }
            Ok(v) if !v.is_zero() => Ok(DurationText(v)),
            Ok(_) => Err(de::Error::custom("must be greater than zero")),
            Err(_) => Err(de::Error::custom(format!("\"{text}\" is not a duration"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Health {
        http: String,
        #[serde(default)]
        retries: u32,
        timeout: Option<DurationText>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Svc {
        image: String,
        #[serde(default)]
        env: BTreeMap<String, String>,
        health: Option<Health>,
        port: u16,
    }

    fn node(text: &str) -> Node {
        super::super::yaml::parse(text).unwrap().unwrap()
    }

    #[test]
    fn reads_structs_with_scalars_as_text() {
        let n = node("image: x\nenv: {A: 1, B: true}\nport: 8080\nhealth: {http: /h, retries: 3, timeout: 5s}\n");
        let s: Svc = from_node(&n, "svc").unwrap();
        assert_eq!(s.env["A"], "1");
        assert_eq!(s.health.unwrap().timeout, Some(DurationText(std::time::Duration::from_secs(5))));
    }

    #[test]
    fn unknown_key_is_located_with_its_path_and_alternatives() {
        let n = node("image: x\nport: 1\nhealth:\n  http: /h\n  retires: 3\n");
        let e = from_node::<Svc>(&n, "stages.db").unwrap_err();
        assert!(e.is_unknown_key());
        assert_eq!(e.field.as_deref(), Some("stages.db.health.retires"));
        assert_eq!((e.pos.unwrap().line, e.pos.unwrap().column), (5, 3));
        assert!(e.expected.contains(&"retries"));
    }

    #[test]
    fn wrong_type_and_bad_duration_and_missing_key() {
        let n = node("image: x\nport: lots\n");
        let e = from_node::<Svc>(&n, "s").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("s.port"));
        assert_eq!(e.message, "must be a whole number from 0 to 65535, not a string");
        let n = node("image: x\nport: 1\nhealth: {http: /h, timeout: 5 parsecs}\n");
        let e = from_node::<Svc>(&n, "s").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("s.health.timeout"));
        assert_eq!(e.message, "\"5 parsecs\" is not a duration");
        assert_eq!(e.pos.unwrap().line, 3);
        let n = node("port: 1\n");
        let e = from_node::<Svc>(&n, "s").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("s.image"));
        assert_eq!(e.message, "required key is missing");
    }
}
