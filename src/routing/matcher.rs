//! The proxies' `match` expressions, compiled once into one anchored, case-insensitive
//! `RegexSet`: one pass over the target tells every proxy that matches, so resolution does not
//! slow down with the number of proxies tried. Sets are shared between configurations with
//! the same expressions.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use regex::{RegexSet, RegexSetBuilder};

/// Compiled program size allowed for one configuration's expressions together.
const SET_SIZE_LIMIT: usize = 8 << 20;
/// Lazy DFA cache allowed per set and thread.
const SET_DFA_LIMIT: usize = 2 << 20;

/// Checks one expression on its own (syntax and features), so that its error names it and so
/// that it cannot unbalance the `^(?:…)$` it is wrapped in.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), String> {
    regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(pattern)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "invalid regular expression: {}",
                syntax_message(&e.to_string())
            )
        })
}

/// regex-syntax errors are multi-line drawings; keep the line that names the problem.
fn syntax_message(full: &str) -> String {
    let reason = full
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(full.lines().last().unwrap_or(full));
    match reason {
        r if r.contains("look-around") => {
            format!("{r} (the regex crate dialect has no look-ahead or look-behind)")
        }
        r if r.contains("backreference") => {
            format!("{r} (the regex crate dialect has no back-references)")
        }
        r => r.to_owned(),
    }
}

/// Checks that one expression alone compiles within the size limit.
pub(crate) fn check_size(pattern: &str) -> Result<(), String> {
    build(&[pattern]).map(|_| ())
}

fn build(patterns: &[&str]) -> Result<RegexSet, String> {
    RegexSetBuilder::new(patterns.iter().map(|p| format!("^(?:{p})$")))
        .case_insensitive(true)
        .size_limit(SET_SIZE_LIMIT)
        .dfa_size_limit(SET_DFA_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "the match expressions are too large to compile (limit {limit} bytes of program)"
            ),
            other => format!(
                "the match expressions do not compile: {}",
                syntax_message(&other.to_string())
            ),
        })
}

/// One string for a list of expressions: each is length-prefixed, so no two lists share a
/// key whatever characters the expressions contain.
fn key(patterns: &[&str]) -> String {
    let mut key = String::with_capacity(patterns.iter().map(|p| p.len() + 4).sum());
    for p in patterns {
        key.push_str(&p.len().to_string());
        key.push(':');
        key.push_str(p);
    }
    key
}

/// Hands out shared compiled sets, keyed by the exact list of expressions.
#[derive(Default)]
pub struct RegexInterner {
    /// Keyed by `key(patterns)`.
    sets: HashMap<Box<str>, Weak<RegexSet>>,
    built_since_prune: usize,
}

impl std::fmt::Debug for RegexInterner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegexInterner")
            .field("sets", &self.sets.len())
            .finish()
    }
}

impl RegexInterner {
    /// The live set for exactly `patterns`, if one was built.
    pub(crate) fn get(&self, patterns: &[&str]) -> Option<Arc<RegexSet>> {
        self.sets
            .get(key(patterns).as_str())
            .and_then(Weak::upgrade)
    }

    /// The set for `patterns` (checked individually already), shared if one is alive.
    pub(crate) fn get_or_build(&mut self, patterns: &[&str]) -> Result<Arc<RegexSet>, String> {
        let key = key(patterns).into_boxed_str();
        if let Some(set) = self.sets.get(&key).and_then(Weak::upgrade) {
            return Ok(set);
        }
        let set = Arc::new(build(patterns)?);
        self.sets.insert(key, Arc::downgrade(&set));
        self.built_since_prune += 1;
        // Forget dead entries now and then, so the map stays proportional to live sets.
        if self.built_since_prune > 1024 && self.built_since_prune > self.sets.len() / 2 {
            self.sets.retain(|_, w| w.strong_count() > 0);
            self.built_since_prune = 0;
        }
        Ok(set)
    }

    /// Number of distinct live sets (for metrics and tests).
    pub fn live_sets(&self) -> usize {
        self.sets.values().filter(|w| w.strong_count() > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, target: &str) -> bool {
        check_pattern(pattern).unwrap();
        build(&[pattern]).unwrap().is_match(target)
    }

    #[test]
    fn documentation_examples_match_whole_target() {
        assert!(matches("uri.com", "uri.com"));
        assert!(!matches("uri.com", "uri1.com"));
        assert!(matches(r"uri[12]\.com", "uri1.com"));
        assert!(matches(r"uri[12]\.com", "uri2.com"));
        assert!(!matches(r"uri[12]\.com", "uri3.com"));
        assert!(matches("^uri.*", "uri"));
        assert!(matches("^uri.*", "uri.com"));
        assert!(!matches("^uri.*", "1uri.com"));
        assert!(matches(".*", "anything"));
    }

    #[test]
    fn matching_is_case_insensitive_and_alternation_stays_anchored() {
        assert!(matches("URI.COM", "uri.com"));
        assert!(matches("a|b", "a"));
        assert!(!matches("a|b", "ab"));
    }

    #[test]
    fn unsupported_syntax_is_named() {
        let e = check_pattern("(?=a)b").unwrap_err();
        assert!(e.contains("look"), "{e}");
        let e = check_pattern(r"(a)\1").unwrap_err();
        assert!(e.contains("backreference"), "{e}");
        assert!(check_pattern("a)|(b").is_err());
        assert!(!check_pattern("(").unwrap_err().contains('\n'));
    }

    #[test]
    fn huge_programs_are_refused() {
        let e = build(&[r"\w{1000}\w{1000}"]).unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn identical_lists_share_one_set() {
        let mut i = RegexInterner::default();
        let a = i.get_or_build(&["a", "b"]).unwrap();
        let b = i.get_or_build(&["a", "b"]).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.get_or_build(&["a"]).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(i.live_sets(), 2);
    }
}
