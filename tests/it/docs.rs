//! The repository documents itself: nothing in it cites a contract outside it, the links of
//! the README and of `docs/` lead somewhere, and `docs/ARCHITECTURE.md` maps every module.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::repo::{path, read};

/// Citations of a document that is not in the repository. Spelled in parts so that this file
/// does not match itself.
fn outside_references() -> [String; 3] {
    [
        format!("{}/{}", "shared", "SPEC"),
        format!("{}/{}", "..", "shared"),
        format!("{} {}", "SPEC", '\u{a7}'),
    ]
}

/// Every file of the repository, relative to its root, except build output (`target`, and any
/// folder holding a `CACHEDIR.TAG`), `.git`, and the migrations: sqlx checksums a migration
/// file with its comments, so an applied one is never edited (their comments are as written).
fn repository_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if p.is_dir() {
            let skipped = name == ".git"
                || name.starts_with("target")
                || p.join("CACHEDIR.TAG").exists()
                || p == root.join("migrations");
            if !skipped {
                repository_files(root, &p, out);
            }
        } else {
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
        }
    }
}

#[test]
fn nothing_in_the_repository_cites_a_document_outside_it() {
    let root = path("");
    let mut files = Vec::new();
    repository_files(&root, &root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("src/lib.rs")),
        "the walk reached src/"
    );
    let needles = outside_references();
    let mut found = Vec::new();
    for file in &files {
        let Ok(bytes) = std::fs::read(root.join(file)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (i, line) in text.lines().enumerate() {
            for needle in &needles {
                if line.contains(needle.as_str()) {
                    found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite docs/ instead (scripts/cite-docs.sh rewrites these):\n{}",
        found.join("\n")
    );
}

/// GitHub's anchor of a heading: lowercase, punctuation other than `-` and `_` dropped,
/// spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside fenced blocks), with GitHub's `-1`,
/// `-2`… suffixes for repeated headings.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let base = slug(line.trim_start_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while out.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        out.insert(anchor);
    }
    out
}

/// The targets of the inline links `[text](target)` of a Markdown file, outside fenced blocks
/// and code spans.
fn link_targets(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        let chars: Vec<char> = line.chars().collect();
        let mut j = 0;
        while j < chars.len() {
            if chars[j] == '`' {
                in_code = !in_code;
            } else if !in_code && chars[j] == ']' && chars.get(j + 1) == Some(&'(') {
                let rest: String = chars[j + 2..].iter().collect();
                if let Some(end) = rest.find(')') {
                    out.push((i + 1, rest[..end].to_string()));
                }
            }
            j += 1;
        }
    }
    out
}

#[test]
fn the_links_of_the_documentation_lead_somewhere() {
    let mut documents = vec!["README.md".to_string()];
    for entry in std::fs::read_dir(path("docs")).expect("docs/ exists") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            documents.push(format!("docs/{name}"));
        }
    }
    for required in [
        "docs/api.md",
        "docs/routing.md",
        "docs/operations.md",
        "docs/security.md",
        "docs/ARCHITECTURE.md",
    ] {
        assert!(
            documents.iter().any(|d| d == required),
            "{required} is missing"
        );
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in &documents {
        let dir = Path::new(document).parent().unwrap().to_path_buf();
        for (line, target) in link_targets(&read(document)) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let relative = if file.is_empty() {
                PathBuf::from(document)
            } else {
                normalise(&dir.join(file))
            };
            checked += 1;
            if !path(&relative.to_string_lossy()).exists() {
                broken.push(format!("{document}:{line}: {target} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor {
                let text = read(&relative.to_string_lossy());
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{document}:{line}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser right?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// `a/../b` → `b`, `./a` → `a`.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in p.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn the_architecture_document_maps_every_module() {
    let map = read("docs/ARCHITECTURE.md");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(path("src")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            if !map.contains(&format!("`src/{name}/")) {
                missing.push(format!("src/{name}/"));
            }
            for file in std::fs::read_dir(entry.path()).unwrap() {
                let file = file.unwrap().file_name().to_string_lossy().into_owned();
                if file.ends_with(".rs") && file != "mod.rs" && !map.contains(&format!("`{file}`"))
                {
                    missing.push(format!("src/{name}/{file}"));
                }
            }
        } else if name.ends_with(".rs") && !map.contains(&format!("`src/{name}`")) {
            missing.push(format!("src/{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md's code map does not name: {missing:?}"
    );
}

#[test]
fn the_checks_find_what_they_look_for() {
    assert_eq!(slug("7. A history of mistakes"), "7-a-history-of-mistakes");
    assert_eq!(slug("`header=` on GET"), "header-on-get");
    let a = anchors("# A\n## Details\n```\n# not a heading\n```\n### Details\n");
    assert!(a.contains("details") && a.contains("details-1") && !a.contains("not-a-heading"));
    assert_eq!(
        link_targets("see [x](a.md#b) and `[y](c)` [z](../d)"),
        vec![(1, "a.md#b".to_string()), (1, "../d".to_string())]
    );
    let [shared_spec, dotdot, cite] = outside_references();
    assert!(format!("see ../{shared_spec}.md").contains(&shared_spec));
    assert!(format!("(SPEC {}3)", '\u{a7}').contains(&cite));
    assert!(!"docs/api.md".contains(&dotdot));
}
