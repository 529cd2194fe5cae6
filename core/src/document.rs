//! Reading a TOML or JSON document into schema types while collecting *every* fault.
//!
//! Serde stops at the first error, so a file with a misspelt key, a string where a
//! number belongs and a missing field would be fixed in three rounds. The schema stays
//! the serde types (one schema, derived, nothing written twice); what changes is the
//! deserializer they are read from:
//!
//! 1. The text is parsed into a [`Node`] tree (TOML or JSON; a *syntax* error still
//!    stops here, with its position, as there is no tree to read).
//! 2. [`read`] drives the types' own `Deserialize` impls over the tree with a
//!    deserializer of its own that reports each fault at its field path — unknown
//!    keys (every struct is read strictly, as `deny_unknown_fields`), values of the
//!    wrong type or range, missing fields — and then marks the faulty node as absent
//!    and reads again. A bad optional field falls back to its default; a bad required
//!    one takes its table with it (so the table's other fields are not read as
//!    missing a second time). Each round finds at least one new fault and removes
//!    at least one node, so it ends after at most one round per node.
//!
//! Paths read as validation writes them: `deployments[chat].pools[a10g].slots` — an
//! element of an array of tables is named by its `name` key when it has one, by its
//! index otherwise.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

use crate::config::FieldError;

/// Deeper documents are refused: no schema nests this deep, and the readers recurse.
pub const MAX_DEPTH: usize = 64;

/// A parsed document: the values TOML and JSON share (TOML datetimes become strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Node>),
    /// Keys in document order.
    Table(Vec<(String, Node)>),
}

/// A document that is not TOML or JSON at all, or nests deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(pub String);

impl Node {
    /// Parse TOML.
    pub fn from_toml(text: &str) -> Result<Node, SyntaxError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| SyntaxError(e.to_string().trim_end().to_string()))?;
        from_toml_value(toml::Value::Table(table), 0)
    }

    /// Parse JSON (serde_json refuses nesting past 128 on its own).
    pub fn from_json(text: &str) -> Result<Node, SyntaxError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SyntaxError(e.to_string()))?;
        from_json_value(value, 0)
    }

    /// What kind of value this is, for messages.
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Node::Null => Unexpected::Unit,
            Node::Bool(b) => Unexpected::Bool(*b),
            Node::Int(i) => match i64::try_from(*i) {
                Ok(i) => Unexpected::Signed(i),
                Err(_) => Unexpected::Other("a large integer"),
            },
            Node::Float(f) => Unexpected::Float(*f),
            Node::Str(s) => Unexpected::Str(s),
            Node::Array(_) => Unexpected::Seq,
            Node::Table(_) => Unexpected::Map,
        }
    }
}

fn too_deep() -> SyntaxError {
    SyntaxError(format!("nested deeper than {MAX_DEPTH} levels"))
}

fn from_toml_value(v: toml::Value, depth: usize) -> Result<Node, SyntaxError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match v {
        toml::Value::String(s) => Node::Str(s),
        toml::Value::Integer(i) => Node::Int(i.into()),
        toml::Value::Float(f) => Node::Float(f),
        toml::Value::Boolean(b) => Node::Bool(b),
        toml::Value::Datetime(d) => Node::Str(d.to_string()),
        toml::Value::Array(a) => Node::Array(
            a.into_iter()
                .map(|v| from_toml_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Node::Table(
            t.into_iter()
                .map(|(k, v)| Ok((k, from_toml_value(v, depth + 1)?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn from_json_value(v: serde_json::Value, depth: usize) -> Result<Node, SyntaxError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match v {
        serde_json::Value::Null => Node::Null,
        serde_json::Value::Bool(b) => Node::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Node::Int(i.into()),
            (_, Some(u), _) => Node::Int(u.into()),
            (_, _, f) => Node::Float(f.unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Node::Str(s),
        serde_json::Value::Array(a) => Node::Array(
            a.into_iter()
                .map(|v| from_json_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(m) => Node::Table(
            m.into_iter()
                .map(|(k, v)| Ok((k, from_json_value(v, depth + 1)?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Read `T` from `root`, returning every fault found, and `T` itself when the root
/// survived (with faulty optional fields at their defaults and faulty array elements
/// left out — good for checking further rules, not for running).
pub fn read<T: DeserializeOwned>(root: &Node) -> (Option<T>, Vec<FieldError>) {
    let sink = Sink::default();
    loop {
        let before = sink.absent.borrow().len();
        let result = T::deserialize(Reader {
            node: root,
            path: String::new(),
            sink: &sink,
        });
        if let Ok(value) = Reader::settle(&sink, "", result) {
            return (Some(value), sink.into_faults());
        }
        // The root itself went, or a round removed nothing: nothing more to learn.
        if sink.is_absent("") || sink.absent.borrow().len() == before {
            return (None, sink.into_faults());
        }
    }
}

/// What one round found: faults (in the order first seen, without repeats) and the
/// paths to treat as absent from now on.
#[derive(Default)]
struct Sink {
    faults: RefCell<Vec<FieldError>>,
    seen: RefCell<HashSet<(String, String)>>,
    absent: RefCell<HashSet<String>>,
}

impl Sink {
    fn fault(&self, field: String, message: String) {
        if self
            .seen
            .borrow_mut()
            .insert((field.clone(), message.clone()))
        {
            self.faults.borrow_mut().push(FieldError { field, message });
        }
    }

    /// Report a fault at `path` and drop the node there from the next round.
    fn fault_and_remove(&self, path: &str, message: String) {
        self.fault(path.to_string(), message);
        self.absent.borrow_mut().insert(path.to_string());
    }

    fn is_absent(&self, path: &str) -> bool {
        self.absent.borrow().contains(path)
    }

    fn into_faults(self) -> Vec<FieldError> {
        self.faults.into_inner()
    }
}

/// The deserializer's error: a fault not yet reported (a value the type refused, a
/// missing field), or one already in the sink that only unwinds the round.
#[derive(Debug)]
enum Fault {
    Message(String),
    Reported,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Message(m) => f.write_str(m),
            Fault::Reported => f.write_str("reported"),
        }
    }
}

impl std::error::Error for Fault {}

impl de::Error for Fault {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Fault::Message(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Fault::Message(format!("{MISSING}`{field}`"))
    }
}

const MISSING: &str = "missing field ";

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn element_path(path: &str, index: usize, element: &Node) -> String {
    let name = match element {
        Node::Table(entries) => entries.iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("name", Node::Str(n)) => Some(n.as_str()),
            _ => None,
        }),
        _ => None,
    };
    match name {
        Some(n) => format!("{path}[{n}]"),
        None => format!("{path}[{index}]"),
    }
}

/// Reads one node; faults of the value itself are reported by whoever asked for it
/// (the table or array holding it), who knows the field the value came from.
struct Reader<'a> {
    node: &'a Node,
    path: String,
    sink: &'a Sink,
}

impl Reader<'_> {
    /// Settle the result of reading the value at `path`: a refusal is reported there
    /// and the value dropped; a missing field is reported at the field's own path,
    /// unless this reader dropped that field itself.
    fn settle<T>(sink: &Sink, path: &str, result: Result<T, Fault>) -> Result<T, Fault> {
        match result {
            Ok(v) => Ok(v),
            Err(Fault::Reported) => Err(Fault::Reported),
            Err(Fault::Message(m)) => {
                if let Some(field) = m.strip_prefix(MISSING) {
                    let field = field.trim_matches('`');
                    let at = child_path(path, field);
                    if !sink.is_absent(&at) {
                        sink.fault(at, "required field is missing".into());
                    }
                    sink.absent.borrow_mut().insert(path.to_string());
                } else {
                    sink.fault_and_remove(path, m);
                }
                Err(Fault::Reported)
            }
        }
    }
}

struct Entries<'a> {
    entries: std::vec::IntoIter<(&'a str, &'a Node)>,
    pending: Option<(String, &'a Node)>,
    path: String,
    sink: &'a Sink,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Fault;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Fault> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((child_path(&self.path, key), node));
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Fault> {
        let Some((path, node)) = self.pending.take() else {
            return Err(Fault::Message("value without a key".into()));
        };
        let result = seed.deserialize(Reader {
            node,
            path: path.clone(),
            sink: self.sink,
        });
        Reader::settle(self.sink, &path, result)
    }
}

struct Elements<'a> {
    elements: std::vec::IntoIter<(String, &'a Node)>,
    sink: &'a Sink,
}

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = Fault;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Fault> {
        let Some((path, node)) = self.elements.next() else {
            return Ok(None);
        };
        let result = seed.deserialize(Reader {
            node,
            path: path.clone(),
            sink: self.sink,
        });
        Reader::settle(self.sink, &path, result).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.elements.len())
    }
}

impl<'a> Reader<'a> {
    fn entries(&self, entries: &'a [(String, Node)]) -> Entries<'a> {
        let present: Vec<(&str, &Node)> = entries
            .iter()
            .filter(|(k, _)| !self.sink.is_absent(&child_path(&self.path, k)))
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        Entries {
            entries: present.into_iter(),
            pending: None,
            path: self.path.clone(),
            sink: self.sink,
        }
    }

    fn elements(&self, elements: &'a [Node]) -> Elements<'a> {
        let present: Vec<(String, &Node)> = elements
            .iter()
            .enumerate()
            .map(|(i, e)| (element_path(&self.path, i, e), e))
            .filter(|(p, _)| !self.sink.is_absent(p))
            .collect();
        Elements {
            elements: present.into_iter(),
            sink: self.sink,
        }
    }
}

impl<'de> de::Deserializer<'de> for Reader<'_> {
    type Error = Fault;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        match self.node {
            // No schema type takes a JSON null but an `Option` (deserialize_option);
            // said as JSON says it, not as serde's "unit value".
            Node::Null => Err(de::Error::invalid_type(Unexpected::Other("null"), &visitor)),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
                (Ok(i), _) => visitor.visit_i64(i),
                (_, Ok(u)) => visitor.visit_u64(u),
                _ => visitor.visit_i128(*i),
            },
            Node::Float(f) => visitor.visit_f64(*f),
            Node::Str(s) => visitor.visit_str(s),
            Node::Array(a) => visitor.visit_seq(self.elements(a)),
            Node::Table(t) => visitor.visit_map(self.entries(t)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        match self.node {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Fault> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fault> {
        match self.node {
            Node::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => Err(de::Error::invalid_type(other.unexpected(), &"a string")),
        }
    }

    /// Unknown keys are reported here, all of them, and left out, so the type sees
    /// only its own fields.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fault> {
        let Node::Table(entries) = self.node else {
            return Err(de::Error::invalid_type(self.node.unexpected(), &"a table"));
        };
        for (key, _) in entries {
            if !fields.contains(&key.as_str()) {
                let at = child_path(&self.path, key);
                let unknown: Fault = de::Error::unknown_field(key, fields);
                self.sink.fault_and_remove(&at, unknown.to_string());
            }
        }
        visitor.visit_map(self.entries(entries))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        items: Vec<Item>,
        #[serde(default)]
        level: u8,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: String,
        size: u32,
        #[serde(default)]
        tag: Option<String>,
    }

    fn faults(text: &str) -> Vec<String> {
        let node = Node::from_toml(text).unwrap();
        read::<Doc>(&node).1.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn every_fault_is_found_in_one_read() {
        let found = faults(
            r#"
            level = 300
            colour = "red"
            [[items]]
            name = "a"
            size = "big"
            sise = 3
            [[items]]
            name = "b"
            [[items]]
            size = -1
            tag = 7
            "#,
        );
        assert_eq!(
            found,
            [
                "colour: unknown field `colour`, expected `items` or `level`",
                "items[a].sise: unknown field `sise`, expected one of `name`, `size`, `tag`",
                "items[a].size: invalid type: string \"big\", expected u32",
                "items[b].size: required field is missing",
                "items[2].size: invalid value: integer `-1`, expected u32",
                "items[2].tag: invalid type: integer `7`, expected a string",
                "items[2].name: required field is missing",
                "level: invalid value: integer `300`, expected u8",
            ]
        );
    }

    #[test]
    fn a_sound_document_reads_as_serde_would() {
        let text = "level = 2\n[[items]]\nname = \"a\"\nsize = 3\n";
        let node = Node::from_toml(text).unwrap();
        let (doc, faults) = read::<Doc>(&node);
        assert!(faults.is_empty(), "{faults:?}");
        assert_eq!(doc, Some(toml::from_str::<Doc>(text).unwrap()));
        let json =
            Node::from_json(r#"{"items": [{"name": "a", "size": 3, "tag": null}], "level": 2}"#)
                .unwrap();
        assert_eq!(read::<Doc>(&json).0, doc);
    }

    #[test]
    fn faulty_optional_fields_fall_back_and_faulty_elements_drop_out() {
        let node = Node::from_toml(
            "level = \"high\"\n[[items]]\nname = \"a\"\nsize = 1\n[[items]]\nname = \"b\"\n",
        )
        .unwrap();
        let (doc, faults) = read::<Doc>(&node);
        assert_eq!(faults.len(), 2, "{faults:?}");
        let doc = doc.unwrap();
        assert_eq!(doc.level, 0);
        assert_eq!(doc.items.len(), 1);
    }

    #[test]
    fn a_root_of_the_wrong_shape_is_one_fault() {
        let node = Node::from_json("[1, 2]").unwrap();
        let (doc, faults) = read::<Doc>(&node);
        assert!(doc.is_none());
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(faults[0].field, "");
    }

    #[test]
    fn deep_documents_are_refused_not_recursed() {
        let deep = format!("a = {}1{}", "[".repeat(500), "]".repeat(500));
        let e = Node::from_toml(&deep);
        assert!(e.is_err(), "{e:?}");
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(Node::from_json(&deep), Err(too_deep()));
    }
}
