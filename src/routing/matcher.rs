//! The proxies' `match` expressions, compiled once into one anchored, case-insensitive
//! regex set: one pass over the target tells every proxy that matches, so resolution does not
//! slow down with the number of proxies tried. Sets are shared between configurations with
//! the same expressions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::{Input, MatchKind, PatternSet, meta};
use regex_syntax::hir::{Hir, Look};

/// One configuration's expressions compiled together (the engine behind `regex::RegexSet`,
/// built from parsed expressions so that the anchors are added to the syntax tree), and the
/// expressions as configured (`explain` shows them; shared like the set, so free per account).
#[derive(Debug)]
pub struct MatchSet {
    regex: meta::Regex,
    patterns: Box<[Box<str>]>,
}

impl MatchSet {
    /// Expression `index` as configured (`.*` where the proxy has no `match`).
    pub(crate) fn pattern(&self, index: usize) -> &str {
        &self.patterns[index]
    }

    #[cfg(test)]
    fn is_match(&self, target: &str) -> bool {
        self.regex.is_match(target)
    }
}

/// Compiled program size allowed for one configuration's expressions together.
const SET_SIZE_LIMIT: usize = 8 << 20;
/// Lazy DFA cache allowed per set and thread.
const SET_DFA_LIMIT: usize = 2 << 20;

/// Checks one expression on its own (syntax and features), so that its error names it and so
/// that it cannot unbalance the `^(?:…)$` it is wrapped in.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), String> {
    parse(pattern)
        .map(|_| ())
        .map_err(|e| format!("invalid regular expression: {e}"))
}

/// The syntax tree of `pattern`, or what is wrong with it.
fn parse(pattern: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(pattern)
        .map_err(|e| syntax_message(&e.to_string()))
}

/// `^(?:pattern)$` on the syntax tree: anchoring the text instead would let an `(?x)` comment
/// swallow the closing anchor.
fn anchored(hir: Hir) -> Hir {
    Hir::concat(vec![Hir::look(Look::Start), hir, Hir::look(Look::End)])
}

/// The expressions of `set` that match the whole of `target`.
pub(crate) fn matching(set: &MatchSet, target: &str) -> PatternSet {
    let mut matched = PatternSet::new(set.regex.pattern_len());
    set.regex
        .which_overlapping_matches(&Input::new(target), &mut matched);
    matched
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

/// Where `pattern` holds a whitespace character that a target would have to contain for that
/// part of the expression to match: `Some(character index from 0, the character)`.
///
/// Only whitespace written as itself counts (verbatim, or escaped as `\ `): it is what a `+`
/// sent unencoded by `curl -d` becomes. A bracketed class counts only when all its members
/// are such whitespace (`[ ]`, from `[+]`): `[0-9 ]` can still match a digit, and docs/routing.md puts
/// no other restriction on the characters of an expression. Not counted either: whitespace
/// that `(?x)` mode ignores or that sits in a `(?x)` comment, negated classes (`[^ ]`), and
/// escapes and classes that name whitespace on purpose (`\s`, `\t`, `\x20`,
/// `[[:space:]]`). An expression that does not parse is left to `check_pattern`.
pub(crate) fn whitespace_literal(pattern: &str) -> Option<(usize, char)> {
    use regex_syntax::ast::{self, Ast, ClassSet, ClassSetItem, LiteralKind};

    fn written_whitespace(lit: &ast::Literal) -> bool {
        lit.c.is_whitespace()
            && matches!(
                lit.kind,
                LiteralKind::Verbatim | LiteralKind::Meta | LiteralKind::Superfluous
            )
    }

    /// The first member of a class made only of written whitespace.
    fn only_whitespace(set: &ClassSet) -> Option<ast::Span> {
        let items = match set {
            ClassSet::Item(ClassSetItem::Union(union)) => union.items.as_slice(),
            ClassSet::Item(item) => std::slice::from_ref(item),
            ClassSet::BinaryOp(_) => return None,
        };
        let mut first = None;
        for item in items {
            match item {
                ClassSetItem::Literal(lit) if written_whitespace(lit) => {
                    first.get_or_insert(lit.span);
                }
                _ => return None,
            }
        }
        first
    }

    #[derive(Default)]
    struct Finder(Option<ast::Span>);

    impl ast::Visitor for Finder {
        type Output = Option<ast::Span>;
        type Err = ();

        fn finish(self) -> Result<Self::Output, ()> {
            Ok(self.0)
        }

        fn visit_pre(&mut self, ast: &Ast) -> Result<(), ()> {
            // Literals inside classes are class members, not `Ast::Literal`s.
            let found = match ast {
                Ast::Literal(lit) if written_whitespace(lit) => Some(lit.span),
                Ast::ClassBracketed(class) if !class.negated => only_whitespace(&class.kind),
                _ => None,
            };
            if self.0.is_none() {
                self.0 = found;
            }
            Ok(())
        }
    }

    // Almost every expression: no whitespace, no parse.
    if !pattern.contains(char::is_whitespace) {
        return None;
    }
    let parsed = ast::parse::Parser::new().parse(pattern).ok()?;
    let span = ast::visit(&parsed, Finder::default()).ok()??;
    // `\ `: the span starts at the backslash; report the whitespace itself.
    let mut at = span.start.offset;
    if pattern[at..].starts_with('\\') {
        at += 1;
    }
    let c = pattern[at..].chars().next()?;
    Some((pattern[..at].chars().count(), c))
}

/// Checks that one expression alone compiles within the size limit.
pub(crate) fn check_size(pattern: &str) -> Result<(), String> {
    build(&[pattern]).map(|_| ())
}

fn build(patterns: &[&str]) -> Result<MatchSet, String> {
    let hirs = patterns
        .iter()
        .map(|p| parse(p).map(anchored))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the match expressions do not compile: {e}"))?;
    // As `regex::RegexSetBuilder` configures it, with our limits.
    let config = meta::Config::new()
        .match_kind(MatchKind::All)
        .utf8_empty(true)
        .which_captures(WhichCaptures::None)
        .nfa_size_limit(Some(SET_SIZE_LIMIT))
        .hybrid_cache_capacity(SET_DFA_LIMIT);
    let regex = meta::Builder::new()
        .configure(config)
        .build_many_from_hir(&hirs)
        .map_err(|e| match e.size_limit() {
            Some(limit) => format!(
                "the match expressions are too large to compile (limit {limit} bytes of program)"
            ),
            None => format!(
                "the match expressions do not compile: {}",
                syntax_message(&e.to_string())
            ),
        })?;
    Ok(MatchSet {
        regex,
        patterns: patterns.iter().map(|p| Box::from(*p)).collect(),
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

/// Hands out shared compiled sets, keyed by the exact list of expressions. Shared between
/// threads: the lock is held for map look-ups only, never while a set compiles.
#[derive(Default)]
pub struct RegexInterner {
    /// Keyed by `key(patterns)`.
    sets: Mutex<HashMap<Box<str>, Weak<MatchSet>>>,
    built_since_prune: AtomicUsize,
}

impl std::fmt::Debug for RegexInterner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegexInterner")
            .field("sets", &self.live_sets())
            .finish()
    }
}

impl RegexInterner {
    fn sets(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Weak<MatchSet>>> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live set for exactly `patterns`, if one was built.
    pub(crate) fn get(&self, patterns: &[&str]) -> Option<Arc<MatchSet>> {
        self.sets()
            .get(key(patterns).as_str())
            .and_then(Weak::upgrade)
    }

    /// The set for `patterns` (checked individually already), shared if one is alive.
    pub(crate) fn get_or_build(&self, patterns: &[&str]) -> Result<Arc<MatchSet>, String> {
        let key = key(patterns).into_boxed_str();
        if let Some(set) = self.sets().get(&key).and_then(Weak::upgrade) {
            return Ok(set);
        }
        let built = Arc::new(build(patterns)?);
        let mut sets = self.sets();
        // Another thread may have built the same set meanwhile: keep one.
        if let Some(set) = sets.get(&key).and_then(Weak::upgrade) {
            return Ok(set);
        }
        sets.insert(key, Arc::downgrade(&built));
        // Forget dead entries now and then, so the map stays proportional to live sets.
        let built_since = self.built_since_prune.fetch_add(1, Ordering::Relaxed) + 1;
        if built_since > 1024 && built_since > sets.len() / 2 {
            sets.retain(|_, w| w.strong_count() > 0);
            self.built_since_prune.store(0, Ordering::Relaxed);
        }
        Ok(built)
    }

    /// Number of distinct live sets (for metrics and tests).
    pub fn live_sets(&self) -> usize {
        self.sets()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
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
    fn verbose_mode_comments_cannot_reach_the_anchors() {
        assert!(matches("(?x) a # a comment", "a"));
        assert!(!matches("(?x) a # a comment", "ab"));
        assert!(matches("(?x) a b c", "ABC"));
        assert!(!matches("(?x) a b c", "xabc"));
    }

    #[test]
    fn the_set_reports_every_matching_expression_in_order() {
        let set = build(&[r"\+44\d+", "uri", ".*", r"\+4\d+"]).unwrap();
        let ids: Vec<usize> = matching(&set, "+4412")
            .iter()
            .map(|p| p.as_usize())
            .collect();
        assert_eq!(ids, [0, 2, 3]);
        assert!(matching(&build(&["a"]).unwrap(), "b").is_empty());
    }

    #[test]
    fn whitespace_that_would_have_to_match_is_found() {
        // What `curl -d` makes of `\+1555[0-9]+`, `\+?1`, `[+]1`, `.+`.
        assert_eq!(whitespace_literal(r"\ 1555[0-9] "), Some((1, ' ')));
        assert_eq!(whitespace_literal(r"\ ?1"), Some((1, ' ')));
        assert_eq!(whitespace_literal("[ ]1"), Some((1, ' ')));
        assert_eq!(whitespace_literal("[ \t]"), Some((1, ' ')));
        assert_eq!(whitespace_literal("1. "), Some((2, ' ')));
        assert_eq!(whitespace_literal("a\tb"), Some((1, '\t')));
        assert_eq!(whitespace_literal("a\u{2003}b"), Some((1, '\u{2003}')));
        assert_eq!(whitespace_literal("é b"), Some((1, ' ')));
        assert_eq!(whitespace_literal(r"(?x) a\ b"), Some((7, ' ')));
    }

    #[test]
    fn whitespace_that_cannot_match_is_not_blamed() {
        for pattern in [
            r"\+1555[0-9]+",
            r"\s*1",
            r"\x20",
            r"\t",
            r"a\u{2003}",
            "[[:space:]]",
            "[^ ]+",
            "[0-9 ]",
            r#"[\"<>;, ]"#,
            "[a[^ ]]",
            r"[\w-- ]+",
            "(?x) \\+ 1555 [0-9]+ # the US",
            "(?x) [ 0-9 ]+",
            "(?x)\n\\+1  # comment with spaces\n",
            "unbalanced ( with space",
        ] {
            assert_eq!(whitespace_literal(pattern), None, "{pattern:?}");
        }
    }

    #[test]
    fn huge_programs_are_refused() {
        let e = build(&[r"\w{1000}\w{1000}"]).unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn identical_lists_share_one_set() {
        let i = RegexInterner::default();
        let a = i.get_or_build(&["a", "b"]).unwrap();
        let b = i.get_or_build(&["a", "b"]).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.get_or_build(&["a"]).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(i.live_sets(), 2);
    }
}
