//! Writing XML by hand, as Restcomm's XStream converters shape it: a handful of elements and
//! attributes, escaped so that every value round-trips exactly.

use std::borrow::Cow;
use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(crate) fn xml_open() -> String {
    String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><RestcommResponse>")
}

pub(crate) fn xml_close(out: &mut String) {
    out.push_str("</RestcommResponse>");
}

pub(crate) fn element(out: &mut String, name: &str, text: &str) {
    if text.is_empty() {
        let _ = write!(out, "<{name}/>");
    } else {
        let _ = write!(out, "<{name}>{}</{name}>", escape(text, false));
    }
}

pub(crate) fn attribute(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, " {name}=\"{}\"", escape(value, true));
}

/// XML escaping that round-trips exactly: markup characters as entities, CR (and in
/// attributes TAB and LF, which attribute normalisation would turn into spaces) as character
/// references, and the characters XML 1.0 cannot carry at all as U+FFFD.
pub(crate) fn escape(text: &str, in_attribute: bool) -> Cow<'_, str> {
    let needs = |c: char| {
        matches!(c, '&' | '<' | '>' | '\r')
            || (in_attribute && matches!(c, '"' | '\'' | '\t' | '\n'))
            || !xml_char(c)
    };
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' if in_attribute => out.push_str("&quot;"),
            '\'' if in_attribute => out.push_str("&apos;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            '\n' if in_attribute => out.push_str("&#10;"),
            c if !xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The XML 1.0 `Char` production.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// An XML document (already rendered) as an `application/xml` response.
pub fn xml_response(status: StatusCode, xml: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        )],
        xml.to_owned(),
    )
        .into_response()
}
