#!/usr/bin/env bash
# Rewrites citations of the old external contract ("SPEC" followed by a section sign and a
# number, with variants such as "§3, §10", "§4–§5", "(… §8)") into the project's own
# documents under docs/, using one fixed mapping of sections to files:
#
#   §1 → README.md              §2, §7, §11, §12 → docs/operations.md
#   §3, §6, §8, §9 → docs/api.md              §4, §5, §13 → docs/routing.md
#   §10 → docs/api.md, or docs/operations.md on a line about export, import or history limits
#   §14 → docs/console.md on a line about the console, else docs/security.md
#
# Usage: scripts/cite-docs.sh [--check] [PATH…]
#   Without PATHs it rewrites every text file under src/ tests/ integrations/ scripts/ bench/
#   benches/ .ci/ and the top-level files (Markdown, Cargo.toml, build.rs…). Never migrations/:
#   sqlx checksums each migration file, comments included, so editing one that a database has
#   applied makes that database refuse to start.
#   --check changes nothing and exits 1 when something would be rewritten.
# Idempotent: a second run finds nothing to rewrite. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os, re, sys

args = sys.argv[1:]
check = "--check" in args
paths = [a for a in args if a != "--check"] or [
    "src", "tests", "integrations", "scripts", "bench", "benches", ".ci",
    "README.md", "BENCHMARKS.md", "RELIABILITY.md", "Cargo.toml", "build.rs", "Dockerfile",
    "docker-compose.yml",
]
SIGN = "\u00a7"
WORD = "SP" + "EC"  # spelled in two parts so that this script does not cite anything itself
FIXED = {1: "README.md", 2: "docs/operations.md", 3: "docs/api.md", 4: "docs/routing.md",
         5: "docs/routing.md", 6: "docs/api.md", 7: "docs/operations.md", 8: "docs/api.md",
         9: "docs/api.md", 11: "docs/operations.md", 12: "docs/operations.md",
         13: "docs/routing.md"}
SEP = r"\s*(?:,|/|\u2013|-|and|&)\s*"
NUM = r"\s*(\d+)(?:\.\d+)*"  # subsections (§13.2) cite their section's document
CITE = re.compile(WORD + r"\s*" + SIGN + NUM + r"((?:" + SEP + SIGN + r"\s*\d+(?:\.\d+)*)*)")
BARE_AFTER = re.compile(r"(docs/[a-z]+\.md|README\.md)([^" + SIGN + r"\n]{0,40}?),\s*" + SIGN + r"(\d+)\b")

def doc(n, line):
    if n == 10:
        if re.search(r"export|import|history.limit|HISTORY_LIMIT|prun", line, re.I):
            return "docs/operations.md"
        return "docs/api.md"
    if n == 14:
        return "docs/console.md" if re.search(r"console", line, re.I) else "docs/security.md"
    return FIXED.get(n, "docs/api.md")

def numbers(first, rest):
    out = [int(first)]
    for sep, n in re.findall(r"(" + SEP + r")" + SIGN + NUM, rest):
        n = int(n)
        if ("\u2013" in sep or "-" in sep) and n > out[-1]:
            out.extend(range(out[-1] + 1, n + 1))
        else:
            out.append(n)
    return out

def rewrite_line(line):
    def cite(m):
        files = []
        for n in numbers(m.group(1), m.group(2)):
            f = doc(n, line)
            if f not in files:
                files.append(f)
        return ", ".join(files)
    new = CITE.sub(cite, line)
    if new != line:
        new = BARE_AFTER.sub(lambda m: m.group(1) + m.group(2) + ", " + doc(int(m.group(3)), line)
                             if doc(int(m.group(3)), line) != m.group(1)
                             else m.group(1) + m.group(2), new)
        new = re.sub(r"(docs/[a-z]+\.md) (steps? \d)", r"\1, \2", new)
        new = re.sub(r"(docs/[a-z]+\.md)'s\b", r"\1", new)
    new = new.replace("the " + WORD + " error body", "the error body of docs/api.md")
    new = new.replace(WORD + " error body", "the error body of docs/api.md")
    return new

def files():
    for p in paths:
        if os.path.isfile(p):
            yield p
        elif os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs[:] = [d for d in dirs if d not in ("target", ".git")]
                for name in names:
                    yield os.path.join(root, name)

changed = 0
for path in sorted(set(files())):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (UnicodeDecodeError, OSError):
        continue
    new = "".join(rewrite_line(l) for l in text.splitlines(keepends=True))
    if new != text:
        changed += 1
        if check:
            print(f"cite-docs: {path} cites the old contract")
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"cite-docs: rewrote {path}")
if check and changed:
    sys.exit(1)
print(f"cite-docs: {changed} file(s) {'to rewrite' if check else 'rewritten'}")
PY
