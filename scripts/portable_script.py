#!/usr/bin/env python3
"""Writes (or, with --check, checks) the portable install script: the extension's own install
script made runnable as plain SQL by a role that is not a superuser, for WAL capture
(docs/wal-capture.md).

    scripts/portable_script.py 0.3.0           # writes extension/portable/audit_trail--0.3.0.portable.sql
    scripts/portable_script.py 0.3.0 --check   # exit 1 if the committed one is stale

It is made from extension/sql/audit_trail--VERSION.sql, statement by statement, so that
nothing the two installs share is written twice:

- a statement only CREATE EXTENSION may run (pg_extension_config_dump) or only a superuser
  (CREATE/ALTER EVENT TRIGGER) is left out;
- a function or view that extension/portable/*.sql defines again (the C functions first of
  all, which need a body in PL/pgSQL) is replaced there, in its place, by that definition;
- a function that cannot exist outside the extension (one taking pg_ddl_command, which
  only C may) is left out where a portable file says `-- portable: leave out audit.NAME`;
- what extension/portable/*.sql defines that the extension has not (the slot's position,
  the writing of WAL-captured events) comes last.

A `LANGUAGE c` function left without a portable definition is an error, never skipped.
Lists the contract crate defines (reserved actions, privilege fields) are written in the
portable files as markers, @@contract:NAME@@, and filled in from contract/src/ here: one
list, not two.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTABLE = ROOT / "extension" / "portable"
# The portable files, in the order their additions need each other.
PORTABLE_FILES = ["functions.sql", "seals.sql", "capture.sql"]

LEFT_OUT = [
    re.compile(r"^SELECT\s+pg_catalog\.pg_extension_config_dump\(", re.I),
    re.compile(r"^(CREATE|ALTER)\s+EVENT\s+TRIGGER\b", re.I),
]
DEFINES = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|VIEW)\s+audit\.([a-z_0-9]+)\b", re.I)


def statements(text):
    """Splits SQL into (leading comments and blank lines, statement) pairs, aware of quotes,
    dollar quotes and comments. The text after the last statement comes as a last pair with
    an empty statement."""
    out, start, i, n = [], 0, 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            i = text.find("\n", i)
            i = n if i == -1 else i + 1
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif c in "'\"":
            j = i + 1
            while True:
                j = text.index(c, j)
                if text.startswith(c * 2, j):
                    j += 2
                    continue
                break
            i = j + 1
        elif c == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", text[i:])
            if m:
                tag = m.group(0)
                i = text.index(tag, i + len(tag)) + len(tag)
            else:
                i += 1
        elif c == ";":
            out.append(text[start:i + 1])
            start = i = i + 1
        else:
            i += 1
    out.append(text[start:])
    pairs = []
    for chunk in out:
        body = re.sub(r"^(?:\s+|--[^\n]*\n|/\*.*?\*/)*", "", chunk, flags=re.S)
        pairs.append((chunk[:len(chunk) - len(body)], body))
    return pairs


def contract_list(name):
    """A `pub const NAME: [&str; N] = [...]` of the contract crate, as SQL string literals;
    constants it names (`[KEY_A, KEY_B]`) are looked up."""
    text = "".join(p.read_text() for p in sorted((ROOT / "contract" / "src").glob("*.rs")))
    m = re.search(r"pub const " + name + r": \[&str; \d+\] =\s*\[(.*?)\];", text, re.S)
    if not m:
        sys.exit(f"contract/src/ defines no list {name}")
    items = []
    for item in re.findall(r'"[^"]*"|[A-Z_]+', m.group(1)):
        if not item.startswith('"'):
            k = re.search(r"pub const " + item + r': &str = ("[^"]*");', text)
            if not k:
                sys.exit(f"contract/src/ defines no string {item}")
            item = k.group(1)
        items.append("'" + item[1:-1].replace("'", "''") + "'")
    return ", ".join(items)


def contract_string(name):
    """A `pub const NAME: &str = "..."` of the contract crate (with `\\` line continuations),
    as an SQL string literal."""
    text = "".join(p.read_text() for p in sorted((ROOT / "contract" / "src").glob("*.rs")))
    m = re.search(r'pub const ' + name + r': &str =\s*"((?:[^"\\]|\\.)*)";', text, re.S)
    if not m:
        sys.exit(f"contract/src/ defines no string {name}")
    value = re.sub(r"\\\n\s*", "", m.group(1))
    if "\\" in value:
        sys.exit(f"contract/src/: {name} holds an escape the generator does not read")
    return "'" + value.replace("'", "''") + "'"


def defined(statement):
    m = DEFINES.match(statement)
    return (m.group(1).upper(), m.group(2)) if m else None


def generate(version):
    source = ROOT / "extension" / "sql" / f"audit_trail--{version}.sql"
    overrides, order, leave_out = {}, [], set()
    for name in PORTABLE_FILES:
        leave_out |= set(re.findall(r"^-- portable: leave out audit\.([a-z_0-9]+)$",
                                    (PORTABLE / name).read_text(), re.M))
        text = re.sub(r"@@contract:([A-Z_]+)@@", lambda m: contract_list(m.group(1)),
                      (PORTABLE / name).read_text())
        text = re.sub(r"@@contract-string:([A-Z_]+)@@", lambda m: contract_string(m.group(1)),
                      text)
        for lead, stmt in statements(text):
            key = defined(stmt)
            if key is None:
                if stmt.strip():
                    order.append(("statement", (lead, stmt)))
                continue
            if key in overrides:
                sys.exit(f"{name}: {key[0].lower()} audit.{key[1]} is defined twice")
            overrides[key] = (lead, stmt)
            order.append(("definition", key))
    used, out, missing = set(), [], []
    for lead, stmt in statements(source.read_text()):
        if any(p.match(stmt) for p in LEFT_OUT):
            out.append(lead + "-- (left out: " + stmt.split("(")[0].split("\n")[0].strip() +
                       " needs CREATE EXTENSION or a superuser)\n")
            continue
        key = defined(stmt)
        if key and key[1] in leave_out:
            out.append(lead + f"-- (left out: audit.{key[1]} cannot be made outside the extension)\n")
            continue
        if key in overrides:
            used.add(key)
            out.append(lead + overrides[key][1])
            continue
        if key and re.search(r"\bLANGUAGE\s+c\b", stmt, re.I):
            missing.append(key[1])
        out.append(lead + stmt)
    if missing:
        sys.exit("no portable definition in extension/portable/ of the C function(s): " +
                 ", ".join(missing))
    out.append("\n-- Only in the portable install " + "-" * 62 + "\n")
    for kind, item in order:
        if kind == "definition":
            if item in used:
                continue
            item = overrides[item]
        out.append(item[0] + item[1])
    header = (f"-- audit_trail {version}, portable install (WAL capture; docs/wal-capture.md).\n"
              "-- Generated by scripts/portable_script.py from extension/sql/audit_trail--"
              f"{version}.sql\n-- and extension/portable/*.sql: edit those, then run "
              "make portable-script.\n\n"
              "-- CREATE EXTENSION makes the schema (the control file's `schema = audit`).\n"
              "CREATE SCHEMA audit;\n"
              # What `audit-trail verify` reads the install's version from (no extension
              # records it): its reference is the one of this version's WAL capture install.
              f"COMMENT ON SCHEMA audit IS 'audit_trail {version} WAL capture install';\n")
    return header + "".join(out).rstrip() + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    target = PORTABLE / f"audit_trail--{args.version}.portable.sql"
    text = generate(args.version)
    if args.check:
        if not target.exists() or target.read_text() != text:
            sys.exit(f"{target.relative_to(ROOT)} is stale: run make portable-script")
        return
    target.write_text(text)


if __name__ == "__main__":
    main()
