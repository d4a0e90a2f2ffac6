#!/usr/bin/env python3
"""Checks the house rules that `wc -l` and `grep` can check (docs/house-rules.md):

- no Rust source file (the end-to-end tests aside) holds more than MAX_RUST_LINES lines of code before its tests
  (`#[cfg(test)]`);
- no SQL function in extension/sql/ (the generated install and upgrade scripts aside) is
  longer than MAX_SQL_FUNCTION_LINES, but for the few named in SQL_EXCEPTIONS, each one
  statement that splitting would make slower or less faithful;
- nothing in the repository refers to a design file outside it.

Exits 1 naming every breach, one per line.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_RUST_LINES = 600
MAX_SQL_FUNCTION_LINES = 80
SQL_EXCEPTIONS = {
    # One statement: the summary's three tables written from one count of the new events.
    "audit.summarize_events",
    # One query, which contract/src/schema.rs holds verbatim so that verify runs it without
    # trusting the database's copy (a test compares them).
    "audit.schema_findings",
}
OUTSIDE = re.compile(r"DESIGN\.md|\.\./shared\b")


def tracked(*patterns):
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [ROOT / p for p in out.split()]


def rust_breaches():
    # The end-to-end tests are test code throughout.
    for path in tracked("*.rs", ":!tests/e2e"):
        lines = 0
        for line in path.read_text().splitlines():
            if line.startswith("#[cfg(test)]"):
                break
            lines += 1
        if lines > MAX_RUST_LINES:
            yield f"{path.relative_to(ROOT)}: {lines} lines before its tests (at most {MAX_RUST_LINES})"


def sql_functions(text):
    """(name, lines) of every CREATE FUNCTION whose body is dollar-quoted."""
    for m in re.finditer(r"^CREATE (?:OR REPLACE )?FUNCTION (audit\.\w+)\(", text, re.M):
        start = m.start()
        body = text.find("$$", start)
        # A C function's declaration ends (";") before any dollar quote.
        if body == -1 or ";" in text[start:body]:
            continue
        end = text.find("$$", body + 2)
        yield m.group(1), text.count("\n", start, end) + 1


def sql_breaches():
    for path in sorted((ROOT / "extension" / "sql").glob("*.sql")):
        if path.name.startswith("audit_trail--"):
            continue
        for name, lines in sql_functions(path.read_text()):
            if lines > MAX_SQL_FUNCTION_LINES and name not in SQL_EXCEPTIONS:
                yield (f"{path.relative_to(ROOT)}: {name} is {lines} lines "
                       f"(at most {MAX_SQL_FUNCTION_LINES})")


def outside_references():
    me = Path(__file__).resolve()
    for path in tracked():
        if path == me or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                yield f"{path.relative_to(ROOT)}:{number}: refers to a file outside the repository"


def main():
    breaches = [*rust_breaches(), *sql_breaches(), *outside_references()]
    for breach in breaches:
        print(f"house_rules: {breach}", file=sys.stderr)
    sys.exit(1 if breaches else 0)


if __name__ == "__main__":
    main()
