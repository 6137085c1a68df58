//! What goes over the wire: form encoding, basic credentials, and reading answers (JSON, XML,
//! the error body of docs/api.md).

use reqwest::{Response, StatusCode};
use serde_json::Value;

/// `application/x-www-form-urlencoded` encoding of `pairs` (everything but unreserved
/// characters percent-encoded, as `curl --data-urlencode` does).
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The status and the body, which must be JSON.
pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, value)
}

/// The status, the `Content-Type` (or "") and the body.
pub async fn text_of(response: Response) -> (StatusCode, String, String) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.expect("body"))
}

/// `body` is the JSON error body of docs/api.md for `status`.
pub fn assert_error(body: &Value, status: u16) {
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["errors"].is_array(), "{body}");
}

/// The `parameter` of each error of an error body, in order.
pub fn error_parameters(body: &Value) -> Vec<String> {
    error_field(body, "parameter")
}

/// The `pointer` of each error of an error body, in order.
pub fn error_pointers(body: &Value) -> Vec<String> {
    error_field(body, "pointer")
}

fn error_field(body: &Value, field: &str) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Texts of every `<name>` element, checking on the way that the document is well-formed.
pub fn xml_text(xml: &str, name: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("malformed XML ({e}): {xml}"))
        {
            Event::Start(e) if e.name().as_ref() == name.as_bytes() => {
                current = Some(String::new())
            }
            Event::Empty(e) if e.name().as_ref() == name.as_bytes() => found.push(String::new()),
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t.decode().unwrap());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&resolve_reference(&r.decode().unwrap()));
                }
            }
            Event::End(e) if e.name().as_ref() == name.as_bytes() => {
                found.push(current.take().unwrap())
            }
            Event::Eof => break,
            _ => {}
        }
    }
    found
}

/// The character an XML entity or character reference (`amp`, `#233`, `#xE9`) stands for.
fn resolve_reference(entity: &str) -> String {
    match entity {
        "amp" => "&".to_owned(),
        "lt" => "<".to_owned(),
        "gt" => ">".to_owned(),
        "quot" => "\"".to_owned(),
        "apos" => "'".to_owned(),
        other => {
            let code = other.strip_prefix('#').expect("character reference");
            let n = match code.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
                None => code.parse().unwrap(),
            };
            char::from_u32(n).unwrap().to_string()
        }
    }
}
