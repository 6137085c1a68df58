//! JSON and XML representations of the admin resource (docs/api.md) and of error bodies.
//!
//! JSON keys follow docs/api.md (Restcomm's keys first, then ours). XML mirrors them the way
//! Restcomm's XStream converters do: `<RestcommResponse>` wrapping one `<ExtensionConfiguration>`
//! (or an `<ExtensionConfigurations>` list whose paging fields are attributes named like
//! Restcomm's: `page`, `numpages`, `pagesize`, ...), one CamelCase element per JSON key.
//! Resource URIs always use the `/2012-04-24/….json` form, as Restcomm's do, whichever prefix
//! or format the request used.

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
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
pub fn date(d: &chrono::DateTime<chrono::Utc>) -> String {
    d.to_rfc2822()
}

/// One configuration (docs/api.md): Restcomm's keys first, then ours.
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
    /// This configuration's revision (docs/api.md), also its `ETag`.
    #[schema(minimum = 1)]
    revision: i64,
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
            revision: record.revision,
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
        element(out, "Revision", &self.revision.to_string());
        out.push_str("</ExtensionConfiguration>");
    }
}

/// One configuration in `format`, status 200, with its revision as `ETag` (docs/api.md).
pub fn configuration(record: &ConfigRecord, format: Format) -> Response {
    let body = ConfigurationJson::of(record);
    let mut response = match format {
        Format::Json => json_response(StatusCode::OK, &body),
        Format::Xml => {
            let mut out = xml_open();
            body.write_xml(&mut out);
            xml_close(&mut out);
            xml_response(StatusCode::OK, &out)
        }
    };
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", record.revision)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
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
    /// One page of a list held in memory (proxies, instances): its items and its numbers.
    pub fn slice<T, U>(
        all: Vec<T>,
        page: i64,
        page_size: i64,
        each: impl FnMut(T) -> U,
    ) -> (Vec<U>, PageInfo) {
        let total = all.len() as i64;
        let start = usize::try_from(page.saturating_mul(page_size)).unwrap_or(usize::MAX);
        let items: Vec<U> = all
            .into_iter()
            .skip(start)
            .take(usize::try_from(page_size).unwrap_or(0))
            .map(each)
            .collect();
        let info = PageInfo {
            page,
            page_size,
            total,
            items: items.len() as i64,
        };
        (items, info)
    }

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

/// The paging members of a Restcomm list, for a page of the list at `base` (a URI with
/// any parameters that come before `Page`, e.g. `…/History.json?AccountSid=AC…&`).
pub struct Paging {
    pub page: i64,
    pub num_pages: i64,
    pub page_size: i64,
    pub total: i64,
    pub start: i64,
    pub end: i64,
    pub uri: String,
    pub first_page_uri: String,
    pub previous_page_uri: Option<String>,
    pub next_page_uri: Option<String>,
    pub last_page_uri: String,
}

impl Paging {
    pub fn new(base: &str, info: PageInfo) -> Paging {
        let separator = if base.contains('?') { "" } else { "?" };
        let page_uri =
            |page: i64| format!("{base}{separator}Page={page}&PageSize={}", info.page_size);
        Paging {
            page: info.page,
            num_pages: info.num_pages(),
            page_size: info.page_size,
            total: info.total,
            start: info.start(),
            end: info.end(),
            uri: page_uri(info.page),
            first_page_uri: page_uri(0),
            previous_page_uri: (info.page > 0)
                .then(|| page_uri((info.page - 1).min(info.last_page()))),
            next_page_uri: (info.page < info.last_page()).then(|| page_uri(info.page + 1)),
            last_page_uri: page_uri(info.last_page()),
        }
    }

    /// `<{name} page=… numpages=… …>`: Restcomm puts the paging of an XML list in attributes.
    pub fn open_xml(&self, out: &mut String, name: &str) {
        out.push('<');
        out.push_str(name);
        let numbers = [
            ("page", self.page),
            ("numpages", self.num_pages),
            ("pagesize", self.page_size),
            ("total", self.total),
            ("start", self.start),
            ("end", self.end),
        ];
        for (name, value) in numbers {
            attribute(out, name, &value.to_string());
        }
        attribute(out, "uri", &self.uri);
        attribute(out, "firstpageuri", &self.first_page_uri);
        if let Some(uri) = &self.previous_page_uri {
            attribute(out, "previouspageuri", uri);
        }
        if let Some(uri) = &self.next_page_uri {
            attribute(out, "nextpageuri", uri);
        }
        attribute(out, "lastpageuri", &self.last_page_uri);
        out.push('>');
    }
}

/// Declares a list in Restcomm's shape (docs/api.md): the members of `Paging`, then the items
/// under their own name; strict (unknown members are refused by its schema), so that the
/// OpenAPI document says exactly what is answered. `new(paging, items)` builds one.
macro_rules! restcomm_list {
    ($(#[$meta:meta])* $name:ident as $schema:ident, $items:ident: $item:ty) => {
        $(#[$meta])*
        #[derive(serde::Serialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        #[schema(as = $schema)]
        pub struct $name<'a> {
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
            $items: Vec<$item>,
        }

        impl<'a> $name<'a> {
            pub fn new(paging: $crate::http::repr::Paging, $items: Vec<$item>) -> Self {
                let p = paging;
                $name {
                    page: p.page,
                    num_pages: p.num_pages,
                    page_size: p.page_size,
                    total: p.total,
                    start: p.start,
                    end: p.end,
                    uri: p.uri,
                    first_page_uri: p.first_page_uri,
                    previous_page_uri: p.previous_page_uri,
                    next_page_uri: p.next_page_uri,
                    last_page_uri: p.last_page_uri,
                    $items,
                }
            }

            /// The paging members again, for the XML form.
            pub fn paging(&self) -> $crate::http::repr::Paging {
                $crate::http::repr::Paging {
                    page: self.page,
                    num_pages: self.num_pages,
                    page_size: self.page_size,
                    total: self.total,
                    start: self.start,
                    end: self.end,
                    uri: self.uri.clone(),
                    first_page_uri: self.first_page_uri.clone(),
                    previous_page_uri: self.previous_page_uri.clone(),
                    next_page_uri: self.next_page_uri.clone(),
                    last_page_uri: self.last_page_uri.clone(),
                }
            }
        }
    };
}
pub(crate) use restcomm_list;

restcomm_list!(
    /// A page of account configurations (docs/api.md).
    ListJson as ConfigurationList,
    extension_configurations: ConfigurationJson<'a>
);

/// A page of account configurations of extension `extension_sid`, status 200.
pub fn configuration_list(
    extension_sid: &str,
    info: PageInfo,
    records: &[ConfigRecord],
    format: Format,
) -> Response {
    let base = format!("/{API_VERSION}/ExtensionsConfiguration.json/{extension_sid}/Accounts.json");
    let paging = Paging::new(&base, info);
    let items = records.iter().map(ConfigurationJson::of).collect();
    let body = ListJson::new(paging, items);
    match format {
        Format::Json => json_response(StatusCode::OK, &body),
        Format::Xml => {
            let mut out = xml_open();
            body.paging().open_xml(&mut out, "ExtensionConfigurations");
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
