//! JSON parsing that keeps member order, reports duplicate members by pointer, and turns
//! syntax errors into one problem that names the line and column.
//!
//! `serde_json::Value` silently keeps the last of two duplicate members; a routing document
//! whose second `match` quietly wins is exactly the kind of typo docs/routing.md wants refused.
//! Strings borrow from the input where they hold no escapes: loading 100,000 stored
//! configurations at start is dominated by this parse.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::problem::Problem;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl Json<'_> {
    /// How a value is named in "invalid type" messages (serde's wording).
    pub(crate) fn describe(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => format!("boolean `{b}`"),
            Json::Int(i) => format!("integer `{i}`"),
            Json::Float(f) => format!("floating point `{f}`"),
            Json::Str(_) => "a string".into(),
            Json::Arr(_) => "an array".into(),
            Json::Obj(_) => "an object".into(),
        }
    }
}

/// Appends one reference token to an RFC 6901 pointer.
pub(crate) fn push_token(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// Where a value sits: a chain on the stack, rendered as a JSON pointer only when a problem
/// is reported (building pointer strings for every member would dominate validation).
#[derive(Clone, Copy)]
pub(crate) enum Path<'p> {
    Root,
    Member(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl<'p> Path<'p> {
    pub(crate) fn member(&'p self, key: &'p str) -> Path<'p> {
        Path::Member(self, key)
    }

    pub(crate) fn index(&'p self, i: usize) -> Path<'p> {
        Path::Index(self, i)
    }

    pub(crate) fn pointer(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Member(parent, key) => push_token(&parent.pointer(), key),
            Path::Index(parent, i) => push_token(&parent.pointer(), &i.to_string()),
        }
    }
}

struct NodeSeed<'p> {
    path: Path<'p>,
    duplicates: &'p RefCell<Vec<Problem>>,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Json::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = NodeSeed {
                path: Path::Index(&self.path, items.len()),
                duplicates: self.duplicates,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Json::Arr(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let seed = NodeSeed {
                path: Path::Member(&self.path, &key),
                duplicates: self.duplicates,
            };
            let value = map.next_value_seed(seed)?;
            if members.iter().any(|(k, _)| *k == key) {
                self.duplicates.borrow_mut().push(Problem {
                    pointer: Path::Member(&self.path, &key).pointer(),
                    message: format!("duplicate member `{key}`"),
                });
            } else {
                members.push((key, value));
            }
        }
        Ok(Json::Obj(members))
    }
}

/// Parses `text`; duplicate members are reported in the second list (the first occurrence is
/// kept so that the rest of the document can still be checked).
pub(crate) fn parse(text: &str) -> Result<(Json<'_>, Vec<Problem>), Problem> {
    let duplicates = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = NodeSeed {
        path: Path::Root,
        duplicates: &duplicates,
    };
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(value) => Ok((value, duplicates.into_inner())),
        Err(e) => Err(syntax_problem(text, &e)),
    }
}

fn syntax_problem(text: &str, e: &serde_json::Error) -> Problem {
    let full = e.to_string();
    let what = full
        .rsplit_once(" at line ")
        .map(|(head, _)| head.to_owned())
        .unwrap_or(full);
    let mut message = format!(
        "invalid JSON at line {} column {}: {what}",
        e.line(),
        e.column()
    );
    if what.starts_with("invalid escape") {
        let escaped = escaped_char_at(text, e.line(), e.column());
        let shown = escaped
            .map(|c| format!("`\\{c}`"))
            .unwrap_or_else(|| "this escape".into());
        message.push_str(&format!(
            ": JSON strings allow only the escapes \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX, so {shown} is not valid JSON; \
             to put a regex backslash in a JSON string, double it: write `\\\\.` for `\\.`"
        ));
    }
    Problem {
        pointer: String::new(),
        message,
    }
}

/// The character after the backslash that serde_json's `line`/`column` (1-based, pointing at
/// or just past the bad escape) refer to.
fn escaped_char_at(text: &str, line: usize, column: usize) -> Option<char> {
    let line_text = text.lines().nth(line.checked_sub(1)?)?;
    let chars: Vec<char> = line_text.chars().collect();
    let upto = column.min(chars.len());
    let slash = chars[..upto].iter().rposition(|&c| c == '\\')?;
    chars.get(slash + 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_reports_duplicates_by_pointer() {
        let (v, dups) = parse(r#"{"b": 1, "a": [{"x": 1, "x": 2}], "b": 3}"#).unwrap();
        let Json::Obj(members) = v else { panic!() };
        assert_eq!(members[0].0, "b");
        assert_eq!(members[0].1, Json::Int(1));
        assert_eq!(
            dups.iter().map(|p| p.pointer.as_str()).collect::<Vec<_>>(),
            ["/a/0/x", "/b"]
        );
    }

    #[test]
    fn strings_without_escapes_borrow_and_escaped_ones_decode() {
        let (v, _) = parse(r#"{"a": "plain", "b\u0041": "x\ny"}"#).unwrap();
        let Json::Obj(members) = v else { panic!() };
        assert!(matches!(&members[0].1, Json::Str(Cow::Borrowed("plain"))));
        assert_eq!(members[1].0, "bA");
        assert_eq!(members[1].1, Json::Str(Cow::Owned("x\ny".into())));
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(push_token("/a", "x/y~z"), "/a/x~1y~0z");
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let p = parse("{\n  \"a\": ,\n}").unwrap_err();
        assert_eq!(p.pointer, "");
        assert!(p.message.contains("line 2 column"), "{}", p.message);
    }

    #[test]
    fn invalid_backslash_escape_gets_the_hint() {
        let p = parse(r#"{"match": "uri[12]\.com"}"#).unwrap_err();
        assert!(p.message.contains("`\\.`"), "{}", p.message);
        assert!(p.message.contains("`\\\\.`"), "{}", p.message);
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert!(parse("{} x").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
    }
}
