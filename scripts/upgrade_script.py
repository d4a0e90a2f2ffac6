#!/usr/bin/env python3
"""Writes (or, with --check, checks) an upgrade script of the extension from its template.

    scripts/upgrade_script.py 0.2.0 0.3.0           # writes extension/sql/audit_trail--0.2.0--0.3.0.sql
    scripts/upgrade_script.py 0.2.0 0.3.0 --check   # exit 1 if the committed one is stale

The template, scripts/upgrade/FROM--TO.sql, holds the steps written by hand (new tables, data
moved, grants) and markers where the new version's definitions go, taken from extension/sql/
so that no function is written twice:

    @@N_name@@   CREATE FUNCTION audit.name, as extension/sql/ defines it (with its comment
                 lines, and the COMMENT ON it that follows it)
    @@R_name@@   the same as CREATE OR REPLACE FUNCTION (the object exists in FROM)
    @@V_name@@   CREATE OR REPLACE VIEW audit.name

It also lists the objects whose definition differs between the two versions' install scripts
and that the upgrade script never creates or replaces (the upgrade test then fails on them):
a reminder, not proof. Only the version being made is generated; a released one is frozen.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL = ROOT / "extension" / "sql"
# The extension's SQL files, as extension/src/lib.rs lists them: one list, not two.
SOURCES = re.findall(r'extension_sql_file!\(\s*"\.\./sql/([a-z_]+\.sql)"',
                     (ROOT / "extension" / "src" / "lib.rs").read_text())
MARKER = re.compile(r"@@([NRV])_([a-z_0-9]+)@@")


def definition(sources, name, kind):
    """The statement creating audit.<name>, with the comment lines just above it."""
    for text in sources.values():
        m = re.search(r"((?:--[^\n]*\n)*)CREATE " + kind + r" audit\." + re.escape(name) + r"\b",
                      text)
        if not m:
            continue
        rest = text[m.end():]
        if kind == "FUNCTION":
            body = rest.find("$$")
            c_function = rest.find("AS 'MODULE_PATHNAME'")
            first_semicolon = rest.find(";")
            dollar_quoted = body != -1 and (c_function == -1 or body < c_function) and (
                first_semicolon == -1 or rest.find("AS $$") < first_semicolon or body < first_semicolon)
            if dollar_quoted:
                end = m.end() + rest.find("$$;", body + 2) + 3
            else:
                end = m.end() + first_semicolon + 1
        else:
            offset = 0
            for line in rest.split("\n"):
                offset += len(line) + 1
                if line.rstrip().endswith(";") and not line.lstrip().startswith("--"):
                    break
            end = m.end() + offset - 1
        # A COMMENT ON the object right after it belongs to its definition.
        comment = re.match(r"\s*COMMENT ON " + kind + r" audit\." + re.escape(name) +
                           r"\b[^;']*IS\s*'(?:[^']|'')*';", text[end:])
        if comment:
            end += comment.end()
        return text[m.start():end]
    sys.exit(f"upgrade_script: no CREATE {kind} audit.{name} in extension/sql/")


def render(template, sources):
    def substitute(m):
        mark, name = m.group(1), m.group(2)
        kind = "VIEW" if mark == "V" else "FUNCTION"
        text = definition(sources, name, kind)
        if mark in "RV":
            text = text.replace(f"CREATE {kind} audit.", f"CREATE OR REPLACE {kind} audit.", 1)
        return text
    return MARKER.sub(substitute, template)


def objects(text):
    """Each function, view and table an install script creates: its statements, comments
    stripped."""
    found = {}
    for m in re.finditer(r"CREATE (?:OR REPLACE )?(?:FUNCTION|VIEW|TABLE) (audit\.[a-z_0-9]+)",
                         text):
        rest = text[m.start():]
        following = re.search(r"\n(?:CREATE |COMMENT |SELECT |ALTER |GRANT |REVOKE |DO )",
                              rest[10:])
        statement = rest[:following.start() + 10] if following else rest
        found.setdefault(m.group(1), []).append(re.sub(r"--[^\n]*", "", statement).strip())
    return found


def unhandled(old_install, new_install, upgrade):
    before, after = objects(old_install), objects(new_install)
    for name in sorted(after):
        if before.get(name) != after[name] and not re.search(
                r"(?:FUNCTION|VIEW|TABLE) " + re.escape(name) + r"\b[ (]", upgrade) and not re.search(
                r"ALTER TABLE " + re.escape(name) + r"\b", upgrade):
            yield name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed script instead of writing it")
    args = parser.parse_args()
    template = ROOT / "scripts" / "upgrade" / f"{args.old}--{args.new}.sql"
    out = SQL / f"audit_trail--{args.old}--{args.new}.sql"
    sources = {f: (SQL / f).read_text() for f in SOURCES}
    text = render(template.read_text(), sources)
    if args.check:
        if not out.exists() or out.read_text() != text:
            print(f"upgrade_script: {out.relative_to(ROOT)} is not what {template.relative_to(ROOT)} "
                  f"and extension/sql/ make: run scripts/upgrade_script.py {args.old} {args.new}",
                  file=sys.stderr)
            return 1
    else:
        out.write_text(text)
        print(f"wrote {out.relative_to(ROOT)}")
    installs = [SQL / f"audit_trail--{v}.sql" for v in (args.old, args.new)]
    if all(p.exists() for p in installs):
        for name in unhandled(installs[0].read_text(), installs[1].read_text(), text):
            print(f"upgrade_script: {name} differs from {args.old} and the upgrade never creates, "
                  "replaces or alters it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
