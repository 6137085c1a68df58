//! JSON and XML representations of the admin resource (SPEC §3) and of error bodies.
//!
//! JSON keys follow SPEC §3 (Restcomm's keys first, then ours). XML mirrors them the way
//! Restcomm's XStream converters do: `<RestcommResponse>` wrapping one `<ExtensionConfiguration>`
//! (or an `<ExtensionConfigurations>` list whose paging fields are attributes named like
//! Restcomm's: `page`, `numpages`, `pagesize`, ...), one CamelCase element per JSON key.
//! Resource URIs always use the `/2012-04-24/….json` form, as Restcomm's do, whichever prefix
//! or format the request used.

use std::fmt::Write as _;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::format::{Format, json_response};
use super::xml::{attribute, element, xml_close, xml_open, xml_response};
use crate::store::ConfigRecord;

pub const API_VERSION: &str = "2012-04-24";

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

/// One configuration (SPEC §3): Restcomm's keys first, then ours.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Configuration)]
pub struct ConfigurationJson<'a> {
    /// The extension's Sid.
    #[schema(pattern = "^EX[0-9a-f]{32}$")]
    sid: &'a str,
    extension: &'a str,
    /// The ConfigurationData exactly as it was posted.
    configuration: &'a str,
    #[serde(rename = "configuration type")]
    #[schema(pattern = "^JSON$")]
    configuration_type: &'static str,
    /// RFC 2822, UTC.
    date_created: String,
    date_updated: String,
    /// `null` for the global configuration.
    #[schema(required = true, pattern = "^AC[0-9a-f]{32}$")]
    account_sid: Option<String>,
    enabled: bool,
    #[schema(pattern = "^2012-04-24$")]
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

/// A page of account configurations, Restcomm's list shape (SPEC §3).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConfigurationList)]
pub struct ListJson<'a> {
    page: i64,
    num_pages: i64,
    page_size: i64,
    total: i64,
    start: i64,
    end: i64,
    uri: String,
    first_page_uri: String,
    /// `null` on the first page.
    #[schema(required = true)]
    previous_page_uri: Option<String>,
    /// `null` on the last page.
    #[schema(required = true)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
