//! "No two modules import each other" (ARCHITECTURE.md), checked on the sources with nothing
//! but std, so that it runs wherever the tests run.
//!
//! Every `.rs` file under `src/` is a module (`src/http/extensions.rs` is `http::extensions`,
//! `src/routing/mod.rs` is `routing`, `src/lib.rs` the crate root). Its references to our
//! modules — `crate::…`, `super::…` (repeated or not), `self::…`, in `use` declarations with
//! their `{…}` groups and anywhere in the code — are resolved to the longest module path that
//! exists, and make the edges of the module graph. A module's edges to its own ancestors and
//! descendants are left out (a parent declares and re-exports its children; children use the
//! parent's shared items), and so is test code (`#[cfg(test)]` modules and `use`s,
//! `src/**/tests.rs`). A strongly connected component of more than one module is a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A reference of module `from` to module `to`, written at `file:line`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    file: String,
    line: usize,
}

/// The module path of a file, from its path relative to `src/` (`/`-separated); `None` for
/// files that are no module of the library: `main.rs` (the binary's own crate) and test code.
fn module_path(relative: &str) -> Option<String> {
    let parts: Vec<&str> = relative.split('/').collect();
    let (file, dirs) = parts.split_last()?;
    if *file == "main.rs" && dirs.is_empty() {
        return None;
    }
    if *file == "tests.rs" || dirs.contains(&"tests") {
        return None;
    }
    let mut segments: Vec<&str> = dirs.to_vec();
    match *file {
        "lib.rs" if dirs.is_empty() => {}
        "mod.rs" => {}
        other => segments.push(other.strip_suffix(".rs")?),
    }
    Some(segments.join("::"))
}

/// `source` with comments and the insides of string and character literals replaced by
/// spaces; newlines are kept, so that offsets keep their line numbers.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&chars, i).filter(|_| {
            // Not inside an identifier (`br"…"`, `r#"…"#`, but not `bar"`).
            i == 0 || !ident(chars[i - 1])
        }) {
            // r, br or cr, then `hashes` times '#', then '"'.
            let open = chars[i..].iter().position(|&c| c == '"').unwrap();
            for _ in 0..=open {
                out.push(' ');
            }
            i += open + 1;
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while i < chars.len() && !chars[i..].starts_with(&close) {
                out.push(blank(chars[i]));
                i += 1;
            }
            for _ in 0..close.len().min(chars.len() - i) {
                out.push(' ');
            }
            i += close.len();
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '\u{…}', '\''), not a lifetime ('a).
            out.push(' ');
            i += 1;
            if chars.get(i) == Some(&'\\') {
                out.push_str("  ");
                i += 2;
            }
            while i < chars.len() && chars[i] != '\'' {
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// At `i`, the start of a raw string (`r"`, `r#"`, `br##"`, `cr"`…): its number of `#`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(chars.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    (chars.get(j + hashes) == Some(&'"')).then_some(hashes)
}

/// `code` (stripped) without test code: the `{…}` block of a `#[cfg(test)] mod …` and a
/// `#[cfg(test)] use …;` are blanked (newlines kept).
fn without_test_code(code: &str) -> String {
    let mut out = code.to_owned();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]") {
        let start = from + at;
        from = start + 1;
        if let Some(end) = test_item_end(&out[start..]) {
            let blanked: String = out[start..start + end]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' })
                .collect();
            out.replace_range(start..start + end, &blanked);
        }
    }
    out
}

/// Where the item that `item` (`#[cfg(test)] …`) starts ends, if it is a `mod` with a body
/// or a `use`.
fn test_item_end(item: &str) -> Option<usize> {
    let mut after = item["#[cfg(test)]".len()..].trim_start();
    // Other attributes of the same item.
    while after.starts_with("#[") {
        after = after[after.find(']')? + 1..].trim_start();
    }
    if after.starts_with("mod ") || after.starts_with("pub mod ") {
        let open = item.find('{')?;
        if item.find(';').is_some_and(|semi| semi < open) {
            return None; // `mod tests;`: a file of its own.
        }
        matching_brace(item, open)
    } else if after.starts_with("use ") || after.starts_with("pub use ") {
        item.find(';').map(|semi| semi + 1)
    } else {
        None
    }
}

/// The byte offset just after the `}` that closes the `{` at `open`.
fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Identifiers, `::` and single punctuation characters, with their byte offsets.
fn tokens(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut chars = code.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut word = String::from(c);
            while let Some(&(_, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    word.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push((i, word));
        } else if c == ':' && chars.peek().is_some_and(|&(_, d)| d == ':') {
            chars.next();
            out.push((i, "::".to_owned()));
        } else if !c.is_whitespace() {
            out.push((i, c.to_string()));
        }
    }
    out
}

/// The paths of a path or a use tree starting at `tokens[*i]` (`a::b`, `a::{b, c::{d, e}}`,
/// `a::*`, `a::b as c`), each as its segments; `self` in a group is the group's prefix.
fn path_tree(tokens: &[(usize, String)], i: &mut usize) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    while let Some((_, token)) = tokens.get(*i) {
        if token == "{" {
            *i += 1;
            let mut paths = Vec::new();
            while tokens.get(*i).is_some_and(|(_, t)| t != "}") {
                for tail in path_tree(tokens, i) {
                    let mut path = prefix.clone();
                    path.extend(tail.into_iter().filter(|s| s != "self"));
                    paths.push(path);
                }
                if tokens.get(*i).is_some_and(|(_, t)| t == "as") {
                    // `as name`: the name is no path.
                    *i += 2;
                }
                if tokens.get(*i).is_some_and(|(_, t)| t == ",") {
                    *i += 1;
                } else if tokens.get(*i).is_some_and(|(_, t)| t != "}") {
                    // Anything else: on to the next token, whatever it is.
                    *i += 1;
                }
            }
            *i += 1;
            return paths;
        }
        if token == "*" {
            *i += 1;
            break;
        }
        if !token.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
            break;
        }
        prefix.push(token.clone());
        *i += 1;
        if tokens.get(*i).is_some_and(|(_, t)| t == "::") {
            *i += 1;
        } else {
            break;
        }
    }
    vec![prefix]
}

/// The references of the module `module` (its source stripped of comments, literals and test
/// code) to modules of the crate: each as a path from the crate root, with its byte offset.
fn references(module: &str, code: &str) -> Vec<(Vec<String>, usize)> {
    let here: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let tokens = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (offset, token) = &tokens[i];
        let starts_a_path = matches!(token.as_str(), "crate" | "super" | "self")
            && tokens.get(i + 1).is_some_and(|(_, t)| t == "::")
            && (i == 0 || tokens[i - 1].1 != "::");
        if !starts_a_path {
            i += 1;
            continue;
        }
        let offset = *offset;
        for path in path_tree(&tokens, &mut i) {
            let mut absolute = here.clone();
            let mut segments = path.into_iter().peekable();
            match segments.peek().map(String::as_str) {
                Some("crate") => {
                    absolute.clear();
                    segments.next();
                }
                Some("self") => {
                    segments.next();
                }
                _ => {
                    while segments.peek().is_some_and(|s| s == "super") {
                        segments.next();
                        absolute.pop();
                    }
                }
            }
            absolute.extend(segments.filter(|s| s != "self"));
            out.push((absolute, offset));
        }
    }
    out
}

/// The longest module path of `modules` that `path` starts with (the crate root, "", at least).
fn resolve(path: &[String], modules: &BTreeSet<String>) -> String {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
        .unwrap_or_default()
}

/// True when `a` is `b`, or one contains the other.
fn related(a: &str, b: &str) -> bool {
    let contains = |outer: &str, inner: &str| {
        outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}::"))
    };
    contains(a, b) || contains(b, a)
}

/// The edges between unrelated modules of `files` (path relative to `src/`, source).
fn edges(files: &[(String, String)]) -> Vec<Edge> {
    let modules: BTreeMap<String, (&String, &String)> = files
        .iter()
        .filter_map(|(path, source)| module_path(path).map(|m| (m, (path, source))))
        .collect();
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut out = BTreeSet::new();
    for (module, (path, source)) in &modules {
        let code = without_test_code(&strip(source));
        if let Some(inline) = inline_module(&code) {
            panic!(
                "src/{path} declares the inline module `{inline}`: this check derives modules \
                 from files only (and ignores #[cfg(test)] ones); give it a file or teach \
                 tests/it/architecture.rs about it"
            );
        }
        for (reference, offset) in references(module, &code) {
            let to = resolve(&reference, &names);
            if !related(module, &to) {
                out.insert(Edge {
                    from: module.clone(),
                    to,
                    file: format!("src/{path}"),
                    line: code[..offset].matches('\n').count() + 1,
                });
            }
        }
    }
    out.into_iter().collect()
}

/// The name of a `mod name { … }` in `code`, if there is one.
fn inline_module(code: &str) -> Option<String> {
    let tokens = tokens(code);
    tokens
        .windows(3)
        .find_map(|w| (w[0].1 == "mod" && w[2].1 == "{").then(|| w[1].1.clone()))
}

/// The strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(edges: &[Edge]) -> Vec<Vec<String>> {
    let mut successors: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for edge in edges {
        successors.entry(&edge.from).or_default().insert(&edge.to);
        successors.entry(&edge.to).or_default();
    }
    struct Tarjan<'a> {
        successors: &'a BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for &w in &self.successors[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.components.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        successors: &successors,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for &v in successors.keys() {
        if !tarjan.index.contains_key(v) {
            tarjan.visit(v);
        }
    }
    tarjan.components.sort();
    tarjan.components
}

/// Each cycle, with the references that make it.
fn describe(cycles: &[Vec<String>], edges: &[Edge]) -> String {
    let name = |m: &str| {
        if m.is_empty() {
            "crate".to_owned()
        } else {
            m.to_owned()
        }
    };
    let mut out = String::new();
    for cycle in cycles {
        out.push_str(&format!(
            "cycle: {}\n",
            cycle
                .iter()
                .map(|m| name(m))
                .collect::<Vec<_>>()
                .join(" ↔ ")
        ));
        for edge in edges
            .iter()
            .filter(|e| cycle.contains(&e.from) && cycle.contains(&e.to))
        {
            out.push_str(&format!(
                "  {} → {}  ({}:{})\n",
                name(&edge.from),
                name(&edge.to),
                edge.file,
                edge.line
            ));
        }
    }
    out
}

/// Every `.rs` file under `dir`, as (path relative to `root`, `/`-separated; source).
fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap();
            let relative: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((relative.join("/"), source));
        }
    }
}

#[test]
fn no_two_modules_of_src_depend_on_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    assert!(files.iter().any(|(path, _)| path == "lib.rs"), "{files:?}");
    let edges = edges(&files);
    let cycles = cycles(&edges);
    assert!(
        cycles.is_empty(),
        "{} module cycles (ARCHITECTURE.md: no two modules import each other; a parent and \
         its children may):\n{}",
        cycles.len(),
        describe(&cycles, &edges)
    );
}

// ---- the checker itself, on files made up for it

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(path, source)| (path.to_string(), source.to_string()))
        .collect()
}

fn edge_pairs(edges: &[Edge]) -> BTreeSet<(String, String)> {
    edges
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect()
}

#[test]
fn module_paths_follow_the_files() {
    assert_eq!(module_path("lib.rs").as_deref(), Some(""));
    assert_eq!(module_path("routing/mod.rs").as_deref(), Some("routing"));
    assert_eq!(
        module_path("http/extensions.rs").as_deref(),
        Some("http::extensions")
    );
    assert_eq!(module_path("a/b/c.rs").as_deref(), Some("a::b::c"));
    assert_eq!(module_path("main.rs"), None);
    assert_eq!(module_path("routing/tests.rs"), None);
}

#[test]
fn the_checker_finds_a_cycle_and_ignores_parents_and_children() {
    let files = files(&[
        // The root declares everything and uses a child: not an edge.
        (
            "lib.rs",
            "pub mod a;\npub mod b;\npub mod p;\nuse crate::a::A;\n",
        ),
        // a → b, in a grouped `use` with `self`.
        ("a.rs", "use crate::b::{self, B};\npub struct A;\n"),
        // b → a, in an expression; a comment and a string naming p are no reference.
        (
            "b.rs",
            "pub struct B;\n// crate::p::c::C\nfn f() -> &'static str { crate::a::make(); \"crate::p\" }\n",
        ),
        // A parent and its child use each other: no cycle.
        (
            "p/mod.rs",
            "mod c;\npub use self::c::C;\npub struct Shared;\n#[cfg(test)]\nuse crate::b::B;\n",
        ),
        (
            "p/c.rs",
            "use super::Shared;\nuse super::super::a::A;\npub struct C;\n\
             #[cfg(test)]\nmod tests {\n    use crate::p::Shared;\n    use crate::b::B;\n}\n",
        ),
    ]);
    let edges = edges(&files);
    let pairs: BTreeSet<(String, String)> = [("a", "b"), ("b", "a"), ("p::c", "a")]
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    assert_eq!(edge_pairs(&edges), pairs, "{edges:#?}");
    let b_to_a = edges.iter().find(|e| e.from == "b").unwrap();
    assert_eq!((b_to_a.file.as_str(), b_to_a.line), ("src/b.rs", 3));
    assert_eq!(cycles(&edges), [["a".to_owned(), "b".to_owned()]]);
    let described = describe(&cycles(&edges), &edges);
    assert!(described.contains("cycle: a ↔ b"), "{described}");
    assert!(described.contains("a → b  (src/a.rs:1)"), "{described}");
}

#[test]
fn the_checker_resolves_groups_and_relative_paths() {
    let files = files(&[
        ("lib.rs", "mod x;\nmod y;\nmod z;\n"),
        ("x/mod.rs", "mod deep;\n"),
        (
            "x/deep.rs",
            // super::super is the root; nested groups; a glob; `as`.
            "use super::super::{y::{self, Y as Why}, z::*};\n",
        ),
        (
            "y.rs",
            "pub struct Y;\nfn f() { let _ = r#\"crate::z\"#; let c = '\"'; }\n",
        ),
        (
            "z.rs",
            "fn g<'a>(s: &'a str) { crate::x::deep::run::<u8>(s); self::h(); }\nfn h() {}\n",
        ),
    ]);
    let edges = edges(&files);
    let pairs: BTreeSet<(String, String)> = [("x::deep", "y"), ("x::deep", "z"), ("z", "x::deep")]
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    assert_eq!(edge_pairs(&edges), pairs, "{edges:#?}");
    assert_eq!(cycles(&edges), [["x::deep".to_owned(), "z".to_owned()]]);
}

#[test]
fn three_modules_in_a_ring_are_one_cycle() {
    let files = files(&[
        ("lib.rs", "mod r;\n"),
        ("r/mod.rs", "mod s;\nmod t;\nmod u;\n"),
        ("r/s.rs", "use super::t::T;\n"),
        ("r/t.rs", "use super::u::U;\npub struct T;\n"),
        ("r/u.rs", "use super::s;\npub struct U;\n"),
    ]);
    let edges = edges(&files);
    assert_eq!(
        cycles(&edges),
        [["r::s".to_owned(), "r::t".to_owned(), "r::u".to_owned()]]
    );
}

/// The store's and the routing cache's write methods; only `configs` (the service that keeps
/// the two equal) may call them from `http/`.
const WRITES: &[&str] = &[
    "write",
    "upsert",
    "remove",
    "delete",
    "rollback",
    "import",
    "apply",
    "apply_compiled",
    "apply_batches",
    "finish_load",
];

/// Calls of a write method in `code` (comments and strings already blanked) whose receiver
/// is not the `configs` service: `(method, line)`. `headers.remove(` is a header map's.
fn direct_writes(code: &str) -> Vec<(String, usize)> {
    let compact: Vec<(char, usize)> = code
        .chars()
        .scan(1usize, |line, c| {
            let at = *line;
            if c == '\n' {
                *line += 1;
            }
            Some((c, at))
        })
        .filter(|(c, _)| !c.is_whitespace())
        .collect();
    let text: String = compact.iter().map(|(c, _)| *c).collect();
    let chars: Vec<char> = text.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    for (i, c) in chars.iter().enumerate() {
        if *c != '.' {
            continue;
        }
        let name: String = chars[i + 1..].iter().take_while(|c| ident(**c)).collect();
        if !WRITES.contains(&name.as_str()) || chars.get(i + 1 + name.len()) != Some(&'(') {
            continue;
        }
        let receiver: String = chars[..i]
            .iter()
            .rev()
            .take_while(|c| ident(**c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if receiver == "configs" || (receiver == "headers" && name == "remove") {
            continue;
        }
        found.push((name, compact[i].1));
    }
    found
}

#[test]
fn http_changes_configurations_only_through_the_configs_service() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src.join("http"), &mut files);
    assert!(
        files.iter().any(|(path, _)| path == "http/extensions.rs"),
        "{files:?}"
    );
    let mut offenders = Vec::new();
    for (path, source) in &files {
        for (method, line) in direct_writes(&without_test_code(&strip(source))) {
            offenders.push(format!("src/{path}:{line}: .{method}("));
        }
    }
    assert!(
        offenders.is_empty(),
        "http/ writes through the store or the routing cache directly (docs/ARCHITECTURE.md: \
         every change goes through `configs::Configs`):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_write_rule_sees_a_direct_write_and_allows_the_service() {
    let code = "fn f(state: S) {\n    state.configs.delete(a, &c, &o);\n    state\n        .configs\n        .store()\n        .remove(a, &c, &o);\n    state.configs.cache().apply(&r);\n    parts.headers.remove(X);\n}\n";
    let found = direct_writes(code);
    assert_eq!(
        found,
        vec![("remove".to_string(), 6), ("apply".to_string(), 7)]
    );
}
