//! A serde `Deserializer` over the located YAML tree that records every problem it meets.
//!
//! Rules that make the error report complete and safe:
//! - Unknown keys are recorded (with "did you mean") and skipped, so the rest of the mapping is
//!   still checked. serde's `fields` list tells us which keys a struct accepts.
//! - Every error leaving a deserializer method is recorded once, at the node it concerns, with
//!   the dotted path of that node (`targets.Staging.imports[1]`).
//! - [`Lenient`] wraps sections and map entries: a broken entry becomes `Invalid` (its errors
//!   already recorded) instead of aborting the whole file.
//! - Scalar values are never echoed in type errors (a token in the wrong place must not end up
//!   in CI logs); enum values are, because they are not secret and the echo helps.
//! - `${VAR}` interpolation is applied to every scalar value (not to keys) as it is read.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::diagnostics::{Diagnostic, Mark};
use super::interpolate::interpolate;
use super::yaml::{Node, NodeKind, Style};
use crate::suggest;

/// Shared state of one deserialisation: the diagnostics found so far and the environment.
pub(crate) struct Context<'env> {
    diagnostics: RefCell<Vec<Diagnostic>>,
    lookup: &'env dyn Fn(&str) -> Option<String>,
    key_hint: &'env dyn Fn(&str, &str) -> Option<String>,
    shape_hint: &'env dyn Fn(&str, &str) -> Option<String>,
}

impl<'env> Context<'env> {
    /// A context reading variables through `lookup`; `key_hint(path, key)` may explain an
    /// unknown key (for keys of other tools' configs).
    pub(crate) fn new(
        lookup: &'env dyn Fn(&str) -> Option<String>,
        key_hint: &'env dyn Fn(&str, &str) -> Option<String>,
        shape_hint: &'env dyn Fn(&str, &str) -> Option<String>,
    ) -> Self {
        Self {
            diagnostics: RefCell::new(Vec::new()),
            lookup,
            key_hint,
            shape_hint,
        }
    }

    /// The diagnostics recorded so far.
    pub(crate) fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics.into_inner()
    }

    fn push(&self, diagnostic: Diagnostic) {
        self.diagnostics.borrow_mut().push(diagnostic);
    }
}

/// Deserialises `T` from `node`.
pub(crate) fn from_node<'de, T: Deserialize<'de>>(node: &Node, cx: &Context<'_>) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        cx,
        path: String::new(),
        is_key: false,
    })
}

/// The error type of [`NodeDe`]. `recorded` errors are already in the context.
#[derive(Debug)]
pub(crate) struct DeError {
    recorded: bool,
    message: String,
    hint: Option<String>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            recorded: false,
            message: msg.to_string(),
            hint: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            recorded: false,
            message: format!("missing required key `{field}`"),
            hint: None,
        }
    }

    fn invalid_type(_unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self {
            recorded: false,
            message: format!("expected {exp}"),
            hint: None,
        }
    }

    fn invalid_value(_unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self {
            recorded: false,
            message: format!("invalid value: expected {exp}"),
            hint: None,
        }
    }
}

/// serde struct name that asks for the node's position (see [`Spanned`]).
const SPANNED: &str = "$secretsync::Spanned";
const SPANNED_FIELDS: &[&str] = &["$line", "$col", "$written", "$value"];
/// Structs that also accept a list (the target shorthand `Review: [Staging]`).
pub(crate) const LIST_SHORTHAND_STRUCT: &str = "$secretsync::Target";

#[derive(Clone)]
struct NodeDe<'a, 'env> {
    node: &'a Node,
    cx: &'a Context<'env>,
    path: String,
    is_key: bool,
}

impl<'a> NodeDe<'a, '_> {
    fn child(&self, node: &'a Node, path: String) -> Self {
        Self {
            node,
            cx: self.cx,
            path,
            is_key: false,
        }
    }

    fn location(&self) -> String {
        if self.path.is_empty() {
            "the file".to_owned()
        } else {
            format!("`{}`", self.path)
        }
    }

    /// Records `err` at this node if nobody did yet.
    fn record(&self, mut err: DeError) -> DeError {
        if !err.recorded {
            let message = if err.message.starts_with("missing required key") {
                format!("{} in {}", err.message, self.location())
            } else {
                format!("{}: {}", self.location(), err.message)
            };
            self.cx
                .push(Diagnostic::error(self.node.mark, message).with_optional_hint(err.hint.take()));
            err.recorded = true;
        }
        err
    }

    fn fail<T>(&self, message: String, hint: Option<String>) -> Result<T, DeError> {
        Err(self.record(DeError {
            recorded: false,
            message,
            hint,
        }))
    }

    fn wrong_kind<T>(&self, expected: &str) -> Result<T, DeError> {
        let hint = (self.cx.shape_hint)(&self.path, expected).or(match (&self.node.kind, expected) {
            (NodeKind::Scalar(..), "a list") if !self.node.is_null() => {
                Some("write `[value]` for a list of one".to_owned())
            }
            _ => None,
        });
        self.fail(format!("expected {expected}, found {}", self.node.describe()), hint)
    }

    /// The scalar's text, interpolated unless it is a key.
    fn text(&self, expected: &str) -> Result<Cow<'a, str>, DeError> {
        match &self.node.kind {
            NodeKind::Scalar(text, ..) if self.is_key => Ok(Cow::Borrowed(text.as_str())),
            NodeKind::Scalar(text, ..) => interpolate(text, self.cx.lookup).or_else(|err| {
                let (message, hint) = err.message_and_hint();
                self.fail(message, Some(hint))
            }),
            _ => self.wrong_kind(expected),
        }
    }

    fn integer(&self) -> Result<i128, DeError> {
        if self.node.is_null() {
            return self.wrong_kind("a whole number");
        }
        let text = self.text("a whole number")?;
        let t = text.trim();
        let (negative, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let parsed = if let Some(hex) = digits.strip_prefix("0x") {
            i128::from_str_radix(hex, 16).ok()
        } else if let Some(oct) = digits.strip_prefix("0o") {
            i128::from_str_radix(oct, 8).ok()
        } else {
            digits
                .replace('_', "")
                .parse::<i128>()
                .ok()
                .filter(|_| !digits.is_empty())
        };
        match parsed {
            Some(n) => Ok(if negative { -n } else { n }),
            None => self.fail(format!("expected a whole number, found {}", self.node.describe()), None),
        }
    }

    fn ranged<T: TryFrom<i128>>(&self) -> Result<T, DeError> {
        let n = self.integer()?;
        T::try_from(n).or_else(|_| self.fail("the number is out of range for this setting".to_owned(), None))
    }
}

// Error recovery: a scalar (or list) that does not parse is recorded, then replaced by a
// stand-in of the right type so that the rest of its mapping — later keys, misspelled keys,
// other sections — is still checked and every mistake is reported in one run. The file is
// invalid either way (the error is recorded); errors the stand-in causes later at the same
// place are dropped by the loader (`load_str`).
macro_rules! deserialize_integer {
    ($($method:ident => $visit:ident, $ty:ty;)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n: $ty = self.ranged().unwrap_or(1);
            visitor.$visit(n).map_err(|e| self.record(e))
        })*
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe {
                items,
                index: 0,
                parent: &self,
            }),
            NodeKind::Map(entries) => visitor.visit_map(MapDe::new(entries, &self, None)),
            NodeKind::Scalar(_, _, _) if self.node.is_null() => visitor.visit_unit(),
            NodeKind::Scalar(text, style, tag) => {
                let resolved = if self.is_key || text.contains("${") || *style != Style::Plain && tag.is_none() {
                    None
                } else {
                    match tag.as_deref() {
                        Some("bool") | None if matches!(text.as_str(), "true" | "True" | "TRUE") => {
                            Some(Scalar::Bool(true))
                        }
                        Some("bool") | None if matches!(text.as_str(), "false" | "False" | "FALSE") => {
                            Some(Scalar::Bool(false))
                        }
                        Some("int") | None if text.parse::<u64>().is_ok() => text.parse().ok().map(Scalar::U64),
                        Some("int") | None if text.parse::<i64>().is_ok() => text.parse().ok().map(Scalar::I64),
                        Some("float") | None if looks_like_float(text) => text.parse().ok().map(Scalar::F64),
                        _ => None,
                    }
                };
                match resolved {
                    Some(Scalar::Bool(b)) => visitor.visit_bool(b),
                    Some(Scalar::U64(n)) => visitor.visit_u64(n),
                    Some(Scalar::I64(n)) => visitor.visit_i64(n),
                    Some(Scalar::F64(n)) => visitor.visit_f64(n),
                    None => {
                        let text = self.text("a value")?;
                        visitor.visit_string(text.into_owned())
                    }
                }
            }
        };
        result.map_err(|e| self.record(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = match self.text("`true` or `false`").as_deref() {
            Ok("true" | "True" | "TRUE") => true,
            Ok("false" | "False" | "FALSE") | Err(_) => false,
            Ok(_) => self.wrong_kind::<bool>("`true` or `false`").unwrap_or(false),
        };
        visitor.visit_bool(value).map_err(|e| self.record(e))
    }

    deserialize_integer! {
        deserialize_i8 => visit_i8, i8;
        deserialize_i16 => visit_i16, i16;
        deserialize_i32 => visit_i32, i32;
        deserialize_i64 => visit_i64, i64;
        deserialize_u8 => visit_u8, u8;
        deserialize_u16 => visit_u16, u16;
        deserialize_u32 => visit_u32, u32;
        deserialize_u64 => visit_u64, u64;
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let n = match self.text("a number").map(|t| t.trim().parse::<f64>()) {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => self.wrong_kind::<f64>("a number").unwrap_or(0.0),
            Err(_) => 0.0,
        };
        visitor.visit_f64(n).map_err(|e| self.record(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = if self.node.is_null() && !self.is_key {
            self.wrong_kind::<String>("a string").unwrap_or_default()
        } else {
            self.text("a string").map(Cow::into_owned).unwrap_or_default()
        };
        visitor.visit_string(text).map_err(|e| self.record(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DeError> {
        self.fail("binary values are not supported here".to_owned(), None)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none().map_err(|e| self.record(e))
        } else {
            let me = self.clone();
            visitor.visit_some(self).map_err(|e| me.record(e))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_unit().map_err(|e| self.record(e))
        } else {
            self.wrong_kind("an empty value")
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        let me = self.clone();
        visitor.visit_newtype_struct(self).map_err(|e| me.record(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let items: &[Node] = if let NodeKind::Seq(items) = &self.node.kind {
            items
        } else {
            if !self.node.is_null() {
                // Recorded; an empty list stands in (see `deserialize_integer!`).
                let _ = self.wrong_kind::<()>("a list");
            }
            &[]
        };
        visitor
            .visit_seq(SeqDe {
                items,
                index: 0,
                parent: &self,
            })
            .map_err(|e| self.record(e))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Map(entries) => visitor.visit_map(MapDe::new(entries, &self, None)),
            _ if self.node.is_null() => visitor.visit_map(MapDe::new(&[], &self, None)),
            _ => return self.wrong_kind("a mapping"),
        };
        result.map_err(|e| self.record(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == SPANNED {
            return visitor
                .visit_map(SpannedDe {
                    de: Some(self.clone()),
                    step: 0,
                })
                .map_err(|e| self.record(e));
        }
        let result = match &self.node.kind {
            NodeKind::Map(entries) => visitor.visit_map(MapDe::new(entries, &self, Some(fields))),
            NodeKind::Seq(items) if name == LIST_SHORTHAND_STRUCT => visitor.visit_seq(SeqDe {
                items,
                index: 0,
                parent: &self,
            }),
            _ if self.node.is_null() => visitor.visit_map(MapDe::new(&[], &self, Some(fields))),
            _ => return self.wrong_kind("a mapping"),
        };
        result.map_err(|e| self.record(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let expected = || variants.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ");
        let text = match &self.node.kind {
            NodeKind::Scalar(..) if !self.node.is_null() => self.text("one of the listed values")?,
            _ => {
                return self.fail(
                    format!("expected one of {}, found {}", expected(), self.node.describe()),
                    None,
                );
            }
        };
        if !variants.contains(&&*text) {
            // A value that came (partly) from the environment is shown as written, `${VAR}`
            // and all: the environment may hold a secret, and messages never echo one.
            let shown = match &self.node.kind {
                NodeKind::Scalar(written, ..) if written.contains("${") => written.as_str(),
                _ => &text,
            };
            let hint = suggest::closest(&text, variants.iter().copied()).map(|c| format!("did you mean `{c}`?"));
            return self.fail(format!("unknown value `{shown}`; expected one of {}", expected()), hint);
        }
        let variant: de::value::StringDeserializer<DeError> = text.into_owned().into_deserializer();
        visitor.visit_enum(UnitVariant(variant)).map_err(|e| self.record(e))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

enum Scalar {
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
}

fn looks_like_float(text: &str) -> bool {
    let t = text.trim_start_matches(['-', '+']);
    matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
        || (t.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '.')
            && t.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
            && t.parse::<f64>().is_ok())
}

struct UnitVariant(de::value::StringDeserializer<DeError>);

impl<'de> de::EnumAccess<'de> for UnitVariant {
    type Error = DeError;
    type Variant = UnitOnly;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, UnitOnly), DeError> {
        Ok((seed.deserialize(self.0)?, UnitOnly))
    }
}

struct UnitOnly;

impl<'de> de::VariantAccess<'de> for UnitOnly {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, _seed: S) -> Result<S::Value, DeError> {
        Err(de::Error::custom("expected a plain value"))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom("expected a plain value"))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(de::Error::custom("expected a plain value"))
    }
}

struct SeqDe<'p, 'a, 'env> {
    items: &'a [Node],
    index: usize,
    parent: &'p NodeDe<'a, 'env>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.get(self.index) else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.parent.path, self.index);
        self.index += 1;
        seed.deserialize(self.parent.child(item, path)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

struct MapDe<'p, 'a, 'env> {
    entries: &'a [(Node, Node)],
    index: usize,
    parent: &'p NodeDe<'a, 'env>,
    fields: Option<&'static [&'static str]>,
    value: Option<(&'a Node, String)>,
}

impl<'p, 'a, 'env> MapDe<'p, 'a, 'env> {
    fn new(entries: &'a [(Node, Node)], parent: &'p NodeDe<'a, 'env>, fields: Option<&'static [&'static str]>) -> Self {
        Self {
            entries,
            index: 0,
            parent,
            fields,
            value: None,
        }
    }

    fn unknown_key(&self, key: &Node, name: &str, fields: &'static [&'static str]) {
        let path = &self.parent.path;
        let hint = (self.parent.cx.key_hint)(path, name)
            .or_else(|| suggest::closest(name, fields.iter().copied()).map(|c| format!("did you mean `{c}`?")))
            .or_else(|| {
                Some(format!(
                    "valid keys here: {}",
                    fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                ))
            });
        let message = if path.is_empty() {
            format!("unknown top-level key `{name}`")
        } else {
            format!("unknown key `{name}` in `{path}`")
        };
        self.parent
            .cx
            .push(Diagnostic::error(key.mark, message).with_optional_hint(hint));
    }
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        while let Some((key, value)) = self.entries.get(self.index) {
            self.index += 1;
            let NodeKind::Scalar(name, ..) = &key.kind else {
                self.parent.cx.push(Diagnostic::error(
                    key.mark,
                    format!("keys must be plain names, found {}", key.describe()),
                ));
                continue;
            };
            if let Some(fields) = self.fields
                && !fields.contains(&name.as_str())
            {
                self.unknown_key(key, name, fields);
                continue;
            }
            let path = if self.parent.path.is_empty() {
                name.clone()
            } else {
                format!("{}.{name}", self.parent.path)
            };
            self.value = Some((value, path.clone()));
            let key_de = NodeDe {
                node: key,
                cx: self.parent.cx,
                path,
                is_key: true,
            };
            return seed.deserialize(key_de).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (node, path) = self.value.take().expect("serde asks for a value after its key");
        seed.deserialize(self.parent.child(node, path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.index)
    }
}

struct SpannedDe<'a, 'env> {
    de: Option<NodeDe<'a, 'env>>,
    step: usize,
}

impl<'de> de::MapAccess<'de> for SpannedDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some(&key) = SPANNED_FIELDS.get(self.step) else {
            return Ok(None);
        };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        self.step += 1;
        let de = self.de.as_ref().expect("value is requested once");
        match self.step {
            1 => seed.deserialize((de.node.mark.line as u64).into_deserializer()),
            2 => seed.deserialize((de.node.mark.col as u64).into_deserializer()),
            3 => seed.deserialize(
                match &de.node.kind {
                    NodeKind::Scalar(text, ..) if text.contains('$') => text.clone(),
                    _ => String::new(),
                }
                .into_deserializer(),
            ),
            _ => seed.deserialize(self.de.take().expect("value is requested once")),
        }
    }
}

/// A value with the position it was read from, for errors found after parsing.
#[derive(Debug, Clone)]
pub struct Spanned<T> {
    /// Where the value starts.
    pub mark: Mark,
    /// The deserialised value (after `${VAR}` interpolation for strings).
    pub value: T,
    /// The text as written when it holds `${…}`: the value came (partly) from the environment
    /// and must not be echoed in messages; they show this instead.
    pub written: Option<String>,
}

impl<T> Spanned<T> {
    /// A value read from `mark`, written as it is.
    pub fn new(mark: Mark, value: T) -> Self {
        Self {
            mark,
            value,
            written: None,
        }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Spanned<T>, A::Error> {
                let (mut line, mut col, mut written, mut value) = (0u64, 0u64, String::new(), None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "$line" => line = map.next_value()?,
                        "$col" => col = map.next_value()?,
                        "$written" => written = map.next_value()?,
                        _ => value = Some(map.next_value()?),
                    }
                }
                let value = value.ok_or_else(|| de::Error::custom("missing value"))?;
                let pos = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
                Ok(Spanned {
                    mark: Mark::new(pos(line), pos(col)),
                    value,
                    written: Some(written).filter(|w| w.contains("${")),
                })
            }
        }
        deserializer.deserialize_struct(SPANNED, SPANNED_FIELDS, V(PhantomData))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// A section or entry that is kept even when it is broken, so that one mistake does not hide
/// the others. `Invalid` means its errors were recorded.
#[derive(Debug, Clone)]
pub enum Lenient<T> {
    /// Parsed.
    Valid(T),
    /// Broken; see the recorded diagnostics.
    Invalid,
}

impl<T> Lenient<T> {
    /// The value, if it parsed.
    pub fn valid(&self) -> Option<&T> {
        match self {
            Self::Valid(v) => Some(v),
            Self::Invalid => None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Errors leaving our deserializer are already recorded (see `NodeDe::record`).
        Ok(T::deserialize(deserializer).map_or(Self::Invalid, Self::Valid))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Lenient<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// A mapping of user-chosen names (targets, sources) in file order, each entry kept even when
/// broken so that references to it do not produce follow-on errors.
#[derive(Debug, Clone)]
pub struct NamedMap<T>(pub Vec<(Spanned<String>, Lenient<T>)>);

impl<T> Default for NamedMap<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NamedMap<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = NamedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<NamedMap<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    out.push((key, map.next_value::<Lenient<T>>()?));
                }
                Ok(NamedMap(out))
            }
        }
        deserializer.deserialize_map(V(PhantomData))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for NamedMap<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let value = generator.subschema_for::<T>();
        schemars::json_schema!({ "type": "object", "additionalProperties": value })
    }
}

/// One value or a list of values (`Environment: prod` or `Environment: [prod, staging]`).
#[derive(Debug, Clone)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    out.push(v);
                }
                Ok(OneOrMany(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl schemars::JsonSchema for OneOrMany {
    fn schema_name() -> Cow<'static, str> {
        "OneOrMany".into()
    }
    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ]
        })
    }
}
