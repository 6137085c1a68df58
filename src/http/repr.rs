//! JSON and XML representations of the admin resource (SPEC §3) and of error bodies.
//!
//! JSON keys follow SPEC §3 (Restcomm's keys first, then ours). XML mirrors them the way
//! Restcomm's XStream converters do: `<RestcommResponse>` wrapping one `<ExtensionConfiguration>`
//! (or an `<ExtensionConfigurations>` list whose paging fields are attributes named like
//! Restcomm's: `page`, `numpages`, `pagesize`, ...), one CamelCase element per JSON key.
//! Resource URIs always use the `/2012-04-24/….json` form, as Restcomm's do, whichever prefix
//! or format the request used.

use std::convert::Infallible;
use std::fmt::Write as _;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::{ApiError, ErrorEntry};
use crate::store::ConfigRecord;

pub const API_VERSION: &str = "2012-04-24";

/// The admin API's path prefixes (SPEC §3).
pub const ADMIN_PREFIXES: [&str; 2] = ["/2012-04-24", "/restcomm/2012-04-24"];

/// Response format negotiated from the path and `Accept` (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// XML only on the admin routes without a `.json` segment and without
    /// `Accept: application/json`; everything else (lookup, operations) speaks JSON.
    pub fn of(path: &str, headers: &HeaderMap) -> Format {
        if !is_admin_path(path) || path.split('/').any(|segment| segment.ends_with(".json")) {
            return Format::Json;
        }
        if accepts_json(headers) {
            Format::Json
        } else {
            Format::Xml
        }
    }
}

/// True for paths under one of the admin prefixes.
pub fn is_admin_path(path: &str) -> bool {
    ADMIN_PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|value| {
            value.split(',').any(|media| {
                let media = media.split(';').next().unwrap_or("").trim();
                media.eq_ignore_ascii_case("application/json")
            })
        })
}

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Format, Infallible> {
        Ok(Format::of(parts.uri.path(), &parts.headers))
    }
}

/// `body` as an `application/json` response.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        // Only our own plain structs are serialised here; this cannot fail in practice.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
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

/// The canonical URI of one configuration.
pub fn configuration_uri(record: &ConfigRecord) -> String {
    let mut uri = format!(
        "/{API_VERSION}/ExtensionsConfiguration.json/{}",
        record.extension_sid
    );
    if let Some(account) = record.account_sid {
        let _ = write!(uri, "?AccountSid={account}");
    }
    uri
}

/// RFC 2822 in UTC, as Restcomm writes dates ("Wed, 26 Nov 2026 14:03:00 +0000").
fn date(d: &chrono::DateTime<chrono::Utc>) -> String {
    d.to_rfc2822()
}

#[derive(Serialize)]
struct ConfigurationJson<'a> {
    sid: &'a str,
    extension: &'a str,
    configuration: &'a str,
    #[serde(rename = "configuration type")]
    configuration_type: &'static str,
    date_created: String,
    date_updated: String,
    account_sid: Option<String>,
    enabled: bool,
    api_version: &'static str,
    uri: String,
}

impl<'a> ConfigurationJson<'a> {
    fn of(record: &'a ConfigRecord) -> ConfigurationJson<'a> {
        ConfigurationJson {
            sid: &record.extension_sid,
            extension: &record.extension_name,
            configuration: &record.configuration,
            configuration_type: "JSON",
            date_created: date(&record.date_created),
            date_updated: date(&record.date_updated),
            account_sid: record.account_sid.map(|a| a.to_string()),
            enabled: record.enabled,
            api_version: API_VERSION,
            uri: configuration_uri(record),
        }
    }

    fn write_xml(&self, out: &mut String) {
        out.push_str("<ExtensionConfiguration>");
        element(out, "Sid", self.sid);
        element(out, "Extension", self.extension);
        element(out, "Configuration", self.configuration);
        element(out, "ConfigurationType", self.configuration_type);
        element(out, "DateCreated", &self.date_created);
        element(out, "DateUpdated", &self.date_updated);
        element(out, "AccountSid", self.account_sid.as_deref().unwrap_or(""));
        element(out, "Enabled", if self.enabled { "true" } else { "false" });
        element(out, "ApiVersion", self.api_version);
        element(out, "Uri", &self.uri);
        out.push_str("</ExtensionConfiguration>");
    }
}

/// One configuration in `format`, status 200.
pub fn configuration(record: &ConfigRecord, format: Format) -> Response {
    let body = ConfigurationJson::of(record);
    match format {
        Format::Json => json_response(StatusCode::OK, &body),
        Format::Xml => {
            let mut out = xml_open();
            body.write_xml(&mut out);
            xml_close(&mut out);
            xml_response(StatusCode::OK, &out)
        }
    }
}

/// Paging of the account list, Restcomm list shape.
///
/// Decisions where Restcomm is silent or inconsistent: `num_pages` = ceil(total / page_size)
/// (0 when there is nothing); the last page index is `max(num_pages - 1, 0)`; `start` =
/// page × page_size; `end` = start + items − 1, or `start` when the page is empty (so that
/// it is never negative); `previous_page_uri` is null on page 0, `next_page_uri` null on and
/// past the last page; `uri` is this page's own URI with its `Page` and `PageSize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageInfo {
    pub page: i64,
    pub page_size: i64,
    pub total: i64,
    pub items: i64,
}

impl PageInfo {
    pub fn num_pages(&self) -> i64 {
        (self.total + self.page_size - 1) / self.page_size
    }

    pub fn last_page(&self) -> i64 {
        (self.num_pages() - 1).max(0)
    }

    pub fn start(&self) -> i64 {
        self.page.saturating_mul(self.page_size)
    }

    pub fn end(&self) -> i64 {
        if self.items == 0 {
            self.start()
        } else {
            self.start() + self.items - 1
        }
    }
}

#[derive(Serialize)]
struct ListJson<'a> {
    page: i64,
    num_pages: i64,
    page_size: i64,
    total: i64,
    start: i64,
    end: i64,
    uri: String,
    first_page_uri: String,
    previous_page_uri: Option<String>,
    next_page_uri: Option<String>,
    last_page_uri: String,
    extension_configurations: Vec<ConfigurationJson<'a>>,
}

/// A page of account configurations of extension `extension_sid`, status 200.
pub fn configuration_list(
    extension_sid: &str,
    info: PageInfo,
    records: &[ConfigRecord],
    format: Format,
) -> Response {
    let base = format!("/{API_VERSION}/ExtensionsConfiguration.json/{extension_sid}/Accounts.json");
    let page_uri = |page: i64| format!("{base}?Page={page}&PageSize={}", info.page_size);
    let body = ListJson {
        page: info.page,
        num_pages: info.num_pages(),
        page_size: info.page_size,
        total: info.total,
        start: info.start(),
        end: info.end(),
        uri: page_uri(info.page),
        first_page_uri: page_uri(0),
        previous_page_uri: (info.page > 0).then(|| page_uri((info.page - 1).min(info.last_page()))),
        next_page_uri: (info.page < info.last_page()).then(|| page_uri(info.page + 1)),
        last_page_uri: page_uri(info.last_page()),
        extension_configurations: records.iter().map(ConfigurationJson::of).collect(),
    };
    match format {
        Format::Json => json_response(StatusCode::OK, &body),
        Format::Xml => {
            let mut out = xml_open();
            out.push_str("<ExtensionConfigurations");
            let numbers = [
                ("page", body.page),
                ("numpages", body.num_pages),
                ("pagesize", body.page_size),
                ("total", body.total),
                ("start", body.start),
                ("end", body.end),
            ];
            for (name, value) in numbers {
                attribute(&mut out, name, &value.to_string());
            }
            attribute(&mut out, "uri", &body.uri);
            attribute(&mut out, "firstpageuri", &body.first_page_uri);
            if let Some(uri) = &body.previous_page_uri {
                attribute(&mut out, "previouspageuri", uri);
            }
            if let Some(uri) = &body.next_page_uri {
                attribute(&mut out, "nextpageuri", uri);
            }
            attribute(&mut out, "lastpageuri", &body.last_page_uri);
            out.push('>');
            for item in &body.extension_configurations {
                item.write_xml(&mut out);
            }
            out.push_str("</ExtensionConfigurations>");
            xml_close(&mut out);
            xml_response(StatusCode::OK, &out)
        }
    }
}

/// `<RestcommResponse><Message>…</Message><Error pointer|parameter="…">…</Error>…</RestcommResponse>`
pub fn error_xml(error: &ApiError) -> String {
    let mut out = xml_open();
    element(&mut out, "Message", &error.message);
    for entry in &error.errors {
        let (name, value, message) = match entry {
            ErrorEntry::Pointer { pointer, message } => ("pointer", pointer, message),
            ErrorEntry::Parameter { parameter, message } => ("parameter", parameter, message),
        };
        out.push_str("<Error");
        attribute(&mut out, name, value);
        out.push('>');
        out.push_str(&escape(message, false));
        out.push_str("</Error>");
    }
    xml_close(&mut out);
    out
}

fn xml_open() -> String {
    String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><RestcommResponse>")
}

fn xml_close(out: &mut String) {
    out.push_str("</RestcommResponse>");
}

fn element(out: &mut String, name: &str, text: &str) {
    if text.is_empty() {
        let _ = write!(out, "<{name}/>");
    } else {
        let _ = write!(out, "<{name}>{}</{name}>", escape(text, false));
    }
}

fn attribute(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, " {name}=\"{}\"", escape(value, true));
}

/// XML escaping that round-trips exactly: markup characters as entities, CR (and in
/// attributes TAB and LF, which attribute normalisation would turn into spaces) as character
/// references, and the characters XML 1.0 cannot carry at all as U+FFFD.
fn escape(text: &str, in_attribute: bool) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| {
        matches!(c, '&' | '<' | '>' | '\r')
            || (in_attribute && matches!(c, '"' | '\'' | '\t' | '\n'))
            || !xml_char(c)
    };
    if !text.chars().any(needs) {
        return std::borrow::Cow::Borrowed(text);
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
    std::borrow::Cow::Owned(out)
}

/// The XML 1.0 `Char` production.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Problem;

    #[test]
    fn format_negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(
            Format::of("/2012-04-24/ExtensionsConfiguration.json/x", &h),
            Format::Json
        );
        assert_eq!(
            Format::of("/restcomm/2012-04-24/ExtensionsConfiguration/x", &h),
            Format::Xml
        );
        assert_eq!(Format::of("/v1/accounts/x/sms-route", &h), Format::Json);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, application/JSON;q=0.9"),
        );
        assert_eq!(
            Format::of("/2012-04-24/ExtensionsConfiguration/x", &h),
            Format::Json
        );
        assert!(!is_admin_path("/2012-04-245/x"));
    }

    #[test]
    fn paging_edges() {
        let empty = PageInfo {
            page: 0,
            page_size: 50,
            total: 0,
            items: 0,
        };
        assert_eq!(
            (
                empty.num_pages(),
                empty.last_page(),
                empty.start(),
                empty.end()
            ),
            (0, 0, 0, 0)
        );
        let last = PageInfo {
            page: 1,
            page_size: 2,
            total: 3,
            items: 1,
        };
        assert_eq!(
            (last.num_pages(), last.last_page(), last.start(), last.end()),
            (2, 1, 2, 2)
        );
    }

    #[test]
    fn error_xml_escapes() {
        let e = ApiError::configuration(vec![Problem {
            pointer: "/a\"b".into(),
            message: "x < y & \u{1}".into(),
        }]);
        let xml = error_xml(&e);
        assert!(
            xml.contains("<Error pointer=\"/a&quot;b\">x &lt; y &amp; \u{FFFD}</Error>"),
            "{xml}"
        );
        assert!(xml.contains("<Message>ConfigurationData is invalid</Message>"));
    }
}
