//! What a viewer sees (docs/security.md): every proxy `password` as `********`, wherever it
//! would appear — stored configurations (JSON and XML), revisions and their patches, lookup,
//! explain and simulation answers. Absent and `null` passwords stay as they are.

use axum::body::Body;
use axum::response::Response;
use serde_json::Value;

use crate::store::{ConfigRecord, Revision};

/// What a viewer sees instead of a password.
pub const MASK: &str = "********";

/// `ConfigurationData` text with the value of every `password` member replaced by the mask,
/// everything else (spacing, order, escapes) kept as written. Linear in the text; a stored
/// configuration is valid JSON, in which only a member name is followed by `:`.
pub fn configuration(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let end = string_end(bytes, i);
        let colon = skip_space(bytes, end);
        if bytes.get(colon) == Some(&b':')
            && serde_json::from_str::<String>(&text[i..end]).is_ok_and(|k| k == "password")
        {
            let value = skip_space(bytes, colon + 1);
            if bytes.get(value) == Some(&b'"') {
                let value_end = string_end(bytes, value);
                out.push_str(&text[copied..value]);
                out.push('"');
                out.push_str(MASK);
                out.push('"');
                copied = value_end;
                i = value_end;
                continue;
            }
        }
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The index just past the string that starts with the quote at `start`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Every string `password` member anywhere in `value`.
fn mask_members(value: &mut Value) {
    match value {
        Value::Object(members) => {
            for (name, member) in members.iter_mut() {
                if name == "password" && member.is_string() {
                    *member = Value::String(MASK.into());
                } else {
                    mask_members(member);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_members),
        _ => {}
    }
}

/// An RFC 6902 patch (JSON text) between two configurations, passwords masked: the value of
/// an operation on a `…/password` path, and every `password` inside an added or replaced
/// proxy (or list of them).
pub fn changes(text: &str) -> String {
    let Ok(mut patch) = serde_json::from_str::<Value>(text) else {
        return "[]".into();
    };
    if let Value::Array(operations) = &mut patch {
        for operation in operations {
            let on_password = operation
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| p.ends_with("/password"));
            if let Some(value) = operation.get_mut("value") {
                if on_password && value.is_string() {
                    *value = Value::String(MASK.into());
                } else {
                    mask_members(value);
                }
            }
        }
    }
    patch.to_string()
}

/// A stored configuration as a viewer sees it.
pub fn record(record: &mut ConfigRecord) {
    record.configuration = configuration(&record.configuration);
}

/// A revision as a viewer sees it.
pub fn revision(revision: &mut Revision) {
    if let Some(text) = &mut revision.configuration {
        *text = configuration(text);
    }
    if let Some(text) = &mut revision.changes {
        *text = changes(text);
    }
}

/// A lookup or simulation answer (JSON) as a viewer sees it: `password` of the route and of
/// every fallback.
pub async fn answer(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        // Not JSON (an error answer is JSON too): nothing of a route in it.
        return Response::from_parts(parts, Body::from(bytes));
    };
    let mask_route = |route: &mut Value| {
        if let Some(password) = route.get_mut("password")
            && password.is_string()
        {
            *password = Value::String(MASK.into());
        }
    };
    if let Some(route) = value.get_mut("route") {
        mask_route(route);
    }
    if let Some(Value::Array(fallbacks)) = value.get_mut("fallbacks") {
        fallbacks.iter_mut().for_each(mask_route);
    }
    // `view=engine`: every route in `routes`, its password as `pass`.
    if let Some(Value::Array(routes)) = value.get_mut("routes") {
        for route in routes {
            if let Some(pass) = route.get_mut("pass")
                && pass.is_string()
            {
                *pass = Value::String(MASK.into());
            }
        }
    }
    let mut parts = parts;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_masks_passwords_and_keeps_the_rest() {
        let text = r#"{"outbound-voice": [{"proxy": [
            {"uri": "a.com", "username": "u", "password" : "s3cr\"et", "match": "password"},
            {"uri": "b.com", "passw\u006frd": "two"},
            {"uri": "c.com"}]}]}"#;
        let masked = configuration(text);
        assert!(!masked.contains("s3cr"), "{masked}");
        assert!(!masked.contains("two"), "{masked}");
        assert!(masked.contains(r#""password" : "********""#), "{masked}");
        assert!(masked.contains(r#""match": "password""#), "{masked}");
        let value: Value = serde_json::from_str(&masked).expect("still JSON");
        assert_eq!(value["outbound-voice"][0]["proxy"][1]["password"], MASK);
        assert_eq!(configuration("{}"), "{}");
    }

    #[test]
    fn patches_mask_values_on_passwords_and_inside_proxies() {
        let patch = r#"[{"op":"replace","path":"/outbound-voice/0/proxy/0/password","value":"new"},
            {"op":"add","path":"/outbound-voice/0/proxy/1","value":{"uri":"x","password":"added"}},
            {"op":"remove","path":"/outbound-voice/0/proxy/2/password"}]"#;
        let masked = changes(patch);
        assert!(
            !masked.contains("new") && !masked.contains("added"),
            "{masked}"
        );
        assert_eq!(masked.matches(MASK).count(), 2, "{masked}");
    }
}
