//! Walks a parsed `ConfigurationData` and collects every problem with its JSON pointer
//! (docs/routing.md). Nothing stops at the first problem: the operator fixes everything in one go.

use std::sync::Arc;

use super::matcher::MatchSet;
use super::problem::Problem;
use super::problems::Problems;

use super::json::{self, Json, Path};
use super::matcher::{self, RegexInterner};
use super::model::{
    FORBIDDEN_HEADERS, HeaderRule, Limits, Model, PolicyModel, ProxyModel, VoiceModel,
};
use super::schedule;
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
    let mut problems = Problems::from(duplicates);
    let model = check_document(&doc, &mut problems, interner, rules);
    match model {
        Some(model) if problems.len() == 0 => Ok(model),
        _ => Err(problems.into_vec()),
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
) -> Option<VoiceModel> {
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
    let before = problems.len();
    let checked: Vec<Checked> = items
        .iter()
        .enumerate()
        .map(|(i, p)| check_proxy(p, list_pointer.index(i), problems, rules))
        .collect();
    check_weights(&checked, list_pointer, problems);
    let all_fine = problems.len() == before && checked.iter().all(|c| c.model.is_some());
    let patterns: Vec<&str> = checked
        .iter()
        .map(|c| c.pattern.as_deref().unwrap_or(".*"))
        .collect();
    let callers: Vec<&str> = checked.iter().filter_map(|c| c.caller.as_deref()).collect();
    // Stored configurations mostly repeat expressions: a set already compiled for this list
    // proves each of them valid, so the (Unicode-heavy) per-expression check is skipped.
    if all_fine
        && let Some(set) = interner.get(&patterns)
        && let Some(callers) = match callers.is_empty() {
            true => Some(None),
            false => interner.get(&callers).map(Some),
        }
    {
        return Some(VoiceModel {
            proxies: checked.into_iter().filter_map(|c| c.model).collect(),
            set,
            callers,
        });
    }
    for (i, c) in checked.iter().enumerate() {
        for (member, pattern) in [("match", &c.pattern), ("caller", &c.caller)] {
            if let Some(pattern) = pattern
                && let Err(e) = matcher::check_pattern(pattern)
            {
                problems.add(list_pointer.index(i).member(member), e);
            }
        }
    }
    if problems.len() != before || !all_fine {
        return None;
    }
    let set = build_set(
        &checked,
        "match",
        &patterns,
        interner,
        list_pointer,
        problems,
    )?;
    let callers = match callers.is_empty() {
        true => None,
        false => Some(build_set(
            &checked,
            "caller",
            &callers,
            interner,
            list_pointer,
            problems,
        )?),
    };
    Some(VoiceModel {
        proxies: checked.into_iter().filter_map(|c| c.model).collect(),
        set,
        callers,
    })
}

/// Compiles one set of expressions (every proxy's `match`, or the `caller`s); when it is too
/// large, blames the expressions that are too large on their own, else the list as a whole.
fn build_set(
    checked: &[Checked],
    member: &str,
    patterns: &[&str],
    interner: &RegexInterner,
    list_pointer: Path<'_>,
    problems: &mut Problems,
) -> Option<Arc<MatchSet>> {
    let e = match interner.get_or_build(patterns) {
        Ok(set) => return Some(set),
        Err(e) => e,
    };
    let before = problems.len();
    for (i, c) in checked.iter().enumerate() {
        let pattern = if member == "match" {
            &c.pattern
        } else {
            &c.caller
        };
        if let Some(pattern) = pattern
            && let Err(e) = matcher::check_size(pattern)
        {
            problems.add(list_pointer.index(i).member(member), e);
        }
    }
    if problems.len() == before {
        problems.add(list_pointer, e);
    }
    None
}

/// Within one `priority`, either every proxy has a `weight` or none does: an error at the
/// first one without, when another of its priority has one.
fn check_weights(checked: &[Checked], list_pointer: Path<'_>, problems: &mut Problems) {
    let mut reported: Vec<u16> = Vec::new();
    for (i, c) in checked.iter().enumerate() {
        let Some(priority) = c.priority else { continue };
        if c.has_weight || reported.contains(&priority) {
            continue;
        }
        let weighted = checked
            .iter()
            .position(|o| o.priority == Some(priority) && o.has_weight);
        if let Some(w) = weighted {
            reported.push(priority);
            problems.add(
                list_pointer.index(i),
                format!(
                    "missing field `weight`: proxy {w} of priority {priority} has a weight, so \
                     every proxy of priority {priority} needs one (0 for a standby proxy)"
                ),
            );
        }
    }
}

/// One proxy as checked: its model when it is valid, and what the checks of the whole list
/// need even when it is not.
struct Checked {
    model: Option<ProxyModel>,
    /// `match`, when a string of acceptable length, for the caller to check as an expression.
    pattern: Option<String>,
    /// `caller`, likewise.
    caller: Option<String>,
    /// The priority (0 when absent); `None` when it is invalid.
    priority: Option<u16>,
    has_weight: bool,
}

/// An expression member (`match`, `caller`): a string of at most `MAX_MATCH_BYTES`, without
/// the whitespace that a `+` sent unencoded turns into (docs/routing.md).
fn expression(
    v: &Json,
    pointer: Path<'_>,
    name: &str,
    problems: &mut Problems,
    rules: Rules,
) -> Option<String> {
    match problems.string(v, pointer) {
        Some(m) if m.len() > MAX_MATCH_BYTES => {
            problems.add(
                pointer,
                format!("{name} is longer than {MAX_MATCH_BYTES} bytes"),
            );
            None
        }
        Some(m)
            if rules == Rules::Input
                && let Some((at, c)) = matcher::whitespace_literal(m) =>
        {
            problems.add(pointer, whitespace_message(name, m, at, c));
            None
        }
        Some(m) => Some(m.to_owned()),
        None => None,
    }
}

/// An integer member within `range`.
fn integer(
    v: &Json,
    pointer: Path<'_>,
    name: &str,
    max: u16,
    problems: &mut Problems,
) -> Option<u16> {
    match v {
        Json::Int(n) if (0..=i128::from(max)).contains(n) => u16::try_from(*n).ok(),
        Json::Int(n) => {
            problems.add(
                pointer,
                format!("{name} {n} is out of range: an integer from 0 to {max}"),
            );
            None
        }
        other => {
            problems.wrong_type(pointer, other, &format!("an integer from 0 to {max}"));
            None
        }
    }
}

pub const MAX_PRIORITY: u16 = 1000;
/// Highest `limits.cps` (docs/routing.md, capacity).
pub const MAX_CPS: u32 = 100_000;
/// Highest `limits.burst`.
pub const MAX_BURST: u32 = 1_000_000;

/// Checks `limits`: `{"cps": 1–100000, "burst": 1–1000000}`, `burst` defaulting to `cps`;
/// every problem with its pointer.
fn check_limits(v: &Json, pointer: Path<'_>, problems: &mut Problems) -> Option<Limits> {
    let [cps, burst] = problems.members(v, pointer, ["cps", "burst"], &["cps"])?;
    let mut positive = |v: Option<&Json>, name: &str, max: u32| -> Result<Option<u32>, ()> {
        let Some(v) = v else { return Ok(None) };
        let pointer = pointer.member(name);
        match v {
            Json::Int(n) if (1..=i128::from(max)).contains(n) => Ok(u32::try_from(*n).ok()),
            Json::Int(n) => {
                problems.add(
                    pointer,
                    format!("{name} {n} is out of range: an integer from 1 to {max}"),
                );
                Err(())
            }
            other => {
                problems.wrong_type(pointer, other, &format!("an integer from 1 to {max}"));
                Err(())
            }
        }
    };
    let cps = positive(cps, "cps", MAX_CPS);
    let burst = positive(burst, "burst", MAX_BURST);
    let cps = cps.ok().flatten()?;
    let burst = burst.ok()?.unwrap_or(cps);
    Some(Limits { cps, burst })
}
pub const MAX_WEIGHT: u16 = 10_000;

/// Checks one proxy.
fn check_proxy(v: &Json, pointer: Path<'_>, problems: &mut Problems, rules: Rules) -> Checked {
    let Some(
        [
            uri,
            username,
            password,
            pattern,
            headers,
            priority,
            weight,
            caller,
            schedule,
            limits,
        ],
    ) = problems.members(
        v,
        pointer,
        [
            "uri", "username", "password", "match", "headers", "priority", "weight", "caller",
            "schedule", "limits",
        ],
        &["uri"],
    )
    else {
        return Checked {
            model: None,
            pattern: None,
            caller: None,
            priority: None,
            has_weight: false,
        };
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

    let mut expression_member = |v: Option<&Json>, name: &str| match v {
        None => None,
        Some(m) => {
            let found = expression(m, pointer.member(name), name, problems, rules);
            ok &= found.is_some();
            found
        }
    };
    let pattern = expression_member(pattern, "match");
    let caller = expression_member(caller, "caller");

    let headers = match headers {
        None => Vec::new(),
        Some(h) => check_headers(h, pointer.member("headers"), problems).unwrap_or_else(|| {
            ok = false;
            Vec::new()
        }),
    };

    let priority_value = match priority {
        None => Ok(None),
        Some(p) => integer(
            p,
            pointer.member("priority"),
            "priority",
            MAX_PRIORITY,
            problems,
        )
        .map(Some)
        .ok_or(()),
    };
    let weight_value = match weight {
        None => Ok(None),
        Some(w) => integer(w, pointer.member("weight"), "weight", MAX_WEIGHT, problems)
            .map(Some)
            .ok_or(()),
    };
    let schedule_value = match schedule {
        None => Ok(None),
        Some(s) => schedule::check(s, pointer.member("schedule"), problems)
            .map(Some)
            .ok_or(()),
    };
    let limits_value = match limits {
        None => Ok(None),
        Some(l) => check_limits(l, pointer.member("limits"), problems)
            .map(Some)
            .ok_or(()),
    };
    ok &= priority_value.is_ok()
        && weight_value.is_ok()
        && schedule_value.is_ok()
        && limits_value.is_ok();

    let checked_priority = priority_value.ok().map(|p| p.unwrap_or(0));
    let has_weight = weight.is_some();
    let model = match parsed_uri {
        Some(uri) if ok => Some(ProxyModel {
            uri,
            username,
            password,
            headers,
            policy: PolicyModel {
                priority: priority_value.ok().flatten(),
                weight: weight_value.ok().flatten(),
                caller: caller.clone(),
                schedule: schedule_value.ok().flatten(),
                limits: limits_value.ok().flatten(),
            },
        }),
        _ => None,
    };
    Checked {
        model,
        pattern,
        caller,
        priority: checked_priority,
        has_weight,
    }
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
fn whitespace_message(name: &str, pattern: &str, at: usize, c: char) -> String {
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
    let input = if name == "match" {
        "a destination"
    } else {
        "a caller"
    };
    format!(
        "{name} `{}` has {what} {place} that {input} would have to contain, but {input} \
         never contains whitespace. The usual cause is a `+` sent unencoded by \
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
        assert_eq!(stored.voice.unwrap().proxies.len(), 2);
        // ... and a set compiled for the stored row does not let the same input through.
        assert!(validate_with(&voice("\\ 1555[0-9] "), &interner, Rules::Input).is_err());
    }
}
