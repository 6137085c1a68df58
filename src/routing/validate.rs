//! Walks a parsed `ConfigurationData` and collects every problem with its JSON pointer
//! (docs/routing.md). Nothing stops at the first problem: the operator fixes everything in one go.

use std::sync::Arc;

use super::matcher::MatchSet;
use super::problem::Problem;

use super::json::{self, Json, Path};
use super::matcher::{self, RegexInterner};
use super::model::{FORBIDDEN_HEADERS, HeaderRule, Model, ProxyModel};
use super::sip::{self, printable};

pub const MAX_CONFIGURATION_BYTES: usize = 65_536;
pub const MAX_PROXIES: usize = 100;
pub const MAX_HEADERS: usize = 50;
// A proxy's `Request-URI` settings are applied by `sip::write_params_set`, which has room
// for `MAX_SETTINGS`.
const _: () = assert!(MAX_HEADERS <= super::sip::MAX_SETTINGS);
pub const MAX_CREDENTIAL_BYTES: usize = 256;
pub const MAX_MATCH_BYTES: usize = 1024;
pub const MAX_DESTINATION_NETWORK_ID: u32 = 2_147_483_647;

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, pointer: Path<'_>, message: impl Into<String>) {
        self.0.push(Problem {
            pointer: pointer.pointer(),
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, pointer: Path<'_>, found: &Json, expected: &str) {
        self.add(
            pointer,
            format!("invalid type: {}, expected {expected}", found.describe()),
        );
    }

    /// The members of object `v` named in `allowed` (in that order); reports unknown members,
    /// then missing required ones. `None` when `v` is not an object.
    fn members<'a, 'j, const N: usize>(
        &mut self,
        v: &'a Json<'j>,
        pointer: Path<'_>,
        allowed: [&str; N],
        required: &[&str],
    ) -> Option<[Option<&'a Json<'j>>; N]> {
        let Json::Obj(members) = v else {
            self.wrong_type(pointer, v, "an object");
            return None;
        };
        let mut found = [None; N];
        for (key, value) in members {
            match allowed.iter().position(|a| a == key) {
                Some(i) => found[i] = Some(value),
                None => self.add(pointer.member(key), format!("unknown field `{key}`")),
            }
        }
        for name in required {
            let i = allowed
                .iter()
                .position(|a| a == name)
                .expect("required ⊆ allowed");
            if found[i].is_none() {
                self.add(pointer, format!("missing field `{name}`"));
            }
        }
        Some(found)
    }

    fn string<'a>(&mut self, v: &'a Json<'_>, pointer: Path<'_>) -> Option<&'a str> {
        match v {
            Json::Str(s) => Some(s),
            other => {
                self.wrong_type(pointer, other, "a string");
                None
            }
        }
    }

    /// An array of exactly one element: Restcomm's shape for both sections.
    fn single<'a, 'j>(&mut self, v: &'a Json<'j>, pointer: Path<'_>) -> Option<&'a Json<'j>> {
        match v {
            Json::Arr(items) if items.len() == 1 => Some(&items[0]),
            Json::Arr(items) => {
                self.add(
                    pointer,
                    format!(
                        "invalid length {}, expected an array of exactly one object",
                        items.len()
                    ),
                );
                None
            }
            other => {
                self.wrong_type(pointer, other, "an array of exactly one object");
                None
            }
        }
    }
}

/// Which rules apply. Input (the admin API, the CLI, simulations) gets every rule of docs/routing.md
/// and §12. A stored row was valid input when it was written: rules that only exist to catch
/// a mistake at the door (whitespace in `match`, docs/operations.md) are not applied to it again, so
/// that adding such a rule never drops an account's routing when the cache loads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Rules {
    Input,
    Stored,
}

/// Validates `text` under `rules`.
pub(crate) fn validate_with(
    text: &str,
    interner: &RegexInterner,
    rules: Rules,
) -> Result<Model, Vec<Problem>> {
    if text.len() > MAX_CONFIGURATION_BYTES {
        return Err(vec![Problem {
            pointer: String::new(),
            message: format!(
                "ConfigurationData is {} bytes; at most {MAX_CONFIGURATION_BYTES} are allowed",
                text.len()
            ),
        }]);
    }
    let (doc, duplicates) = json::parse(text).map_err(|p| vec![p])?;
    let mut problems = Problems(duplicates);
    let model = check_document(&doc, &mut problems, interner, rules);
    match model {
        Some(model) if problems.0.is_empty() => Ok(model),
        _ => Err(problems.0),
    }
}

fn check_document(
    doc: &Json,
    problems: &mut Problems,
    interner: &RegexInterner,
    rules: Rules,
) -> Option<Model> {
    let [voice, sms] =
        problems.members(doc, Path::Root, ["outbound-voice", "outbound-sms"], &[])?;
    let voice = voice.and_then(|v| check_voice(v, problems, interner, rules));
    let sms = sms.and_then(|v| check_sms(v, problems));
    let empty = matches!(doc, Json::Obj(m) if m.is_empty());
    Some(Model { voice, sms, empty })
}

fn check_sms(v: &Json, problems: &mut Problems) -> Option<u32> {
    let section = Path::Root.member("outbound-sms");
    let pointer = section.index(0);
    let item = problems.single(v, section)?;
    let [id] = problems.members(
        item,
        pointer,
        ["destination_network_id"],
        &["destination_network_id"],
    )?;
    let id = id?;
    let pointer = pointer.member("destination_network_id");
    let range =
        || format!("destination_network_id must be between 0 and {MAX_DESTINATION_NETWORK_ID}");
    let parsed = match id {
        Json::Int(n) => u32::try_from(*n)
            .ok()
            .filter(|n| *n <= MAX_DESTINATION_NETWORK_ID)
            .ok_or_else(range),
        Json::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            let digits = s.trim_start_matches('0');
            if digits.len() > 10 {
                Err(range())
            } else {
                let n: u64 = if digits.is_empty() {
                    0
                } else {
                    digits.parse().unwrap_or(u64::MAX)
                };
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_DESTINATION_NETWORK_ID)
                    .ok_or_else(range)
            }
        }
        Json::Str(s) => Err(format!(
            "`{}` is not a decimal number: expected an integer or a string of decimal digits",
            printable(s)
        )),
        other => Err(format!(
            "invalid type: {}, expected an integer or a string of decimal digits",
            other.describe()
        )),
    };
    parsed.map_err(|m| problems.add(pointer, m)).ok()
}

fn check_voice(
    v: &Json,
    problems: &mut Problems,
    interner: &RegexInterner,
    rules: Rules,
) -> Option<(Vec<ProxyModel>, Arc<MatchSet>)> {
    let section = Path::Root.member("outbound-voice");
    let item_pointer = section.index(0);
    let list_pointer = item_pointer.member("proxy");
    let item = problems.single(v, section)?;
    let [proxy] = problems.members(item, item_pointer, ["proxy"], &["proxy"])?;
    let items = match proxy? {
        Json::Arr(items) if (1..=MAX_PROXIES).contains(&items.len()) => items,
        Json::Arr(items) => {
            problems.add(
                list_pointer,
                format!(
                    "invalid length {}, expected 1 to {MAX_PROXIES} proxies",
                    items.len()
                ),
            );
            return None;
        }
        other => {
            problems.wrong_type(list_pointer, other, "an array of proxies");
            return None;
        }
    };
    let before = problems.0.len();
    let checked: Vec<(Option<ProxyModel>, Option<String>)> = items
        .iter()
        .enumerate()
        .map(|(i, p)| check_proxy(p, list_pointer.index(i), problems, rules))
        .collect();
    let all_fine = problems.0.len() == before && checked.iter().all(|(p, _)| p.is_some());
    let patterns: Vec<&str> = checked
        .iter()
        .map(|(_, m)| m.as_deref().unwrap_or(".*"))
        .collect();
    // Stored configurations mostly repeat expressions: a set already compiled for this list
    // proves each of them valid, so the (Unicode-heavy) per-expression check is skipped.
    if all_fine && let Some(set) = interner.get(&patterns) {
        return Some((checked.into_iter().filter_map(|(p, _)| p).collect(), set));
    }
    for (i, (_, pattern)) in checked.iter().enumerate() {
        if let Some(pattern) = pattern
            && let Err(e) = matcher::check_pattern(pattern)
        {
            problems.add(list_pointer.index(i).member("match"), e);
        }
    }
    if problems.0.len() != before || !all_fine {
        return None;
    }
    let set = match interner.get_or_build(&patterns) {
        Ok(set) => set,
        Err(e) => {
            // Blame the expressions that are too large on their own, else the list as a whole.
            let before = problems.0.len();
            for (i, (_, pattern)) in checked.iter().enumerate() {
                if let Some(pattern) = pattern
                    && let Err(e) = matcher::check_size(pattern)
                {
                    problems.add(list_pointer.index(i).member("match"), e);
                }
            }
            if problems.0.len() == before {
                problems.add(list_pointer, e);
            }
            return None;
        }
    };
    Some((checked.into_iter().filter_map(|(p, _)| p).collect(), set))
}

/// Checks one proxy; also returns its `match` when that is a string of acceptable length,
/// for the caller to check as an expression (possibly through the interner).
fn check_proxy(
    v: &Json,
    pointer: Path<'_>,
    problems: &mut Problems,
    rules: Rules,
) -> (Option<ProxyModel>, Option<String>) {
    let Some([uri, username, password, pattern, headers]) = problems.members(
        v,
        pointer,
        ["uri", "username", "password", "match", "headers"],
        &["uri"],
    ) else {
        return (None, None);
    };
    let mut ok = true;

    let uri_pointer = pointer.member("uri");
    let parsed_uri = uri
        .and_then(|u| problems.string(u, uri_pointer))
        .and_then(|u| match sip::parse_proxy_uri(u) {
            Ok(_) => Some(u.to_owned()),
            Err(e) => {
                problems.add(uri_pointer, format!("invalid proxy uri: {e}"));
                None
            }
        });

    let mut credential = |v: Option<&Json>, name: &str| -> Option<String> {
        let v = v?;
        let pointer = pointer.member(name);
        let s = problems.string(v, pointer);
        match s {
            None => {
                ok = false;
                None
            }
            // Never quote a credential back: errors end up in logs and terminals.
            Some(s) if s.len() > MAX_CREDENTIAL_BYTES => {
                problems.add(
                    pointer,
                    format!("{name} is longer than {MAX_CREDENTIAL_BYTES} bytes"),
                );
                ok = false;
                None
            }
            Some(s) if s.chars().any(char::is_control) => {
                problems.add(pointer, format!("{name} contains a control character"));
                ok = false;
                None
            }
            Some(s) => Some(s.to_owned()),
        }
    };
    let username = credential(username, "username");
    let password = credential(password, "password");

    let pattern = match pattern {
        None => None,
        Some(m) => {
            let pointer = pointer.member("match");
            match problems.string(m, pointer) {
                Some(m) if m.len() > MAX_MATCH_BYTES => {
                    problems.add(
                        pointer,
                        format!("match is longer than {MAX_MATCH_BYTES} bytes"),
                    );
                    ok = false;
                    None
                }
                Some(m)
                    if rules == Rules::Input
                        && let Some((at, c)) = matcher::whitespace_literal(m) =>
                {
                    problems.add(pointer, whitespace_message(m, at, c));
                    ok = false;
                    None
                }
                Some(m) => Some(m.to_owned()),
                None => {
                    ok = false;
                    None
                }
            }
        }
    };

    let headers = match headers {
        None => Vec::new(),
        Some(h) => check_headers(h, pointer.member("headers"), problems).unwrap_or_else(|| {
            ok = false;
            Vec::new()
        }),
    };

    let model = match parsed_uri {
        Some(uri) if ok => Some(ProxyModel {
            uri,
            username,
            password,
            headers,
        }),
        _ => None,
    };
    (model, pattern)
}

fn check_headers(v: &Json, pointer: Path<'_>, problems: &mut Problems) -> Option<Vec<HeaderRule>> {
    let items = match v {
        Json::Arr(items) if items.len() <= MAX_HEADERS => items,
        Json::Arr(items) => {
            problems.add(
                pointer,
                format!(
                    "invalid length {}, expected at most {MAX_HEADERS} headers",
                    items.len()
                ),
            );
            return None;
        }
        other => {
            problems.wrong_type(pointer, other, "an array of headers");
            return None;
        }
    };
    let rules: Vec<Option<HeaderRule>> = items
        .iter()
        .enumerate()
        .map(|(i, h)| check_header(h, pointer.index(i), problems))
        .collect();
    rules.into_iter().collect()
}

fn check_header(v: &Json, pointer: Path<'_>, problems: &mut Problems) -> Option<HeaderRule> {
    let fields = ["headerName", "key", "value"];
    let found = problems.members(v, pointer, fields, &fields)?;
    let mut out = [None, None, None];
    for (i, (name, value)) in fields.iter().zip(found).enumerate() {
        let Some(value) = value else { continue };
        let field_pointer = pointer.member(name);
        let Some(s) = problems.string(value, field_pointer) else {
            continue;
        };
        let verdict = match *name {
            "headerName" => check_header_name(s),
            "key" if sip::is_token(s) => Ok(()),
            "key" => Err(format!("key `{}` is not a SIP token", printable(s))),
            _ if sip::is_token(s) || sip::parse_hostport(s).is_ok() => Ok(()),
            _ => Err(format!(
                "value `{}` is neither a SIP token nor host[:port]",
                printable(s)
            )),
        };
        match verdict {
            Ok(()) => out[i] = Some(s.to_owned()),
            Err(e) => problems.add(field_pointer, e),
        }
    }
    let [header, key, value] = out;
    Some(HeaderRule {
        header: header?,
        key: key?,
        value: value?,
    })
}

fn check_header_name(name: &str) -> Result<(), String> {
    if !sip::is_token(name) {
        return Err(format!(
            "headerName `{}` is not a SIP header name",
            printable(name)
        ));
    }
    if FORBIDDEN_HEADERS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
    {
        return Err(format!("header `{name}` cannot be changed by routing"));
    }
    Ok(())
}

/// docs/operations.md: a `match` that needs whitespace in the destination never matches anything, and
/// is almost always a `+` that `curl -d` sent unencoded (a form decodes `+` as a space).
fn whitespace_message(pattern: &str, at: usize, c: char) -> String {
    let what = match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        c => format!("a whitespace character (U+{:04X})", u32::from(c)),
    };
    let before: String = pattern.chars().take(at).collect();
    let place = match before.is_empty() {
        true => "at its start".to_owned(),
        false => format!("after `{}`", printable(&before)),
    };
    format!(
        "match `{}` has {what} {place} that a destination would have to contain, but a \
         destination never contains whitespace. The usual cause is a `+` sent unencoded by \
         `curl -d`, which arrives as a space: send ConfigurationData with \
         `curl --data-urlencode` (e.g. `--data-urlencode ConfigurationData@config.json`)",
        printable(pattern),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice(pattern: &str) -> String {
        serde_json::json!({"outbound-voice": [{"proxy": [
            {"uri": "a.example.com", "match": ".*"},
            {"uri": "b.example.com", "match": pattern},
        ]}]})
        .to_string()
    }

    #[test]
    fn whitespace_in_match_is_refused_with_the_curl_hint() {
        // `\+1555[0-9]+` sent with `curl -d`.
        let problems = validate_with(
            &voice(r"\ 1555[0-9] "),
            &RegexInterner::default(),
            Rules::Input,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].pointer, "/outbound-voice/0/proxy/1/match");
        let m = &problems[0].message;
        for part in [
            "has a space after `\\\\`",
            "never contains whitespace",
            "`+` sent unencoded by `curl -d`",
            "--data-urlencode",
        ] {
            assert!(m.contains(part), "{part:?} not in {m}");
        }
    }

    #[test]
    fn whitespace_that_matches_nothing_is_fine() {
        for pattern in [r"\s*\+1555[0-9]+", "(?x) \\+1555 [0-9]+  # US", "[^ ]+"] {
            assert!(
                validate_with(&voice(pattern), &RegexInterner::default(), Rules::Input).is_ok(),
                "{pattern}"
            );
        }
    }

    #[test]
    fn stored_rows_are_not_refused_for_an_input_only_rule() {
        let interner = RegexInterner::default();
        let stored = validate_with(&voice("\\ 1555[0-9] "), &interner, Rules::Stored).unwrap();
        assert_eq!(stored.voice.unwrap().0.len(), 2);
        // ... and a set compiled for the stored row does not let the same input through.
        assert!(validate_with(&voice("\\ 1555[0-9] "), &interner, Rules::Input).is_err());
    }
}
