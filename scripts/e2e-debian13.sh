#!/usr/bin/env bash
# The end-to-end suite against PostgreSQL 17, which is Debian 13's (Debian 12 has none): the
# suite and the sidecar are built here, the extension is built and installed in the Debian 13
# chroot (scripts/debian13.sh), and the suite runs there. Binaries linked on Debian 12 run on
# Debian 13's newer glibc; the extension must be built against 17's own headers and pg_config.
#
#   scripts/e2e-debian13.sh [TEST ARGS...]    e.g. --skip tls:: or surface::
#
# UPDATE_GOLDEN=1 is passed on: the surface tests then write 17's golden files.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"

log() { printf 'e2e-debian13: %s\n' "$*" >&2; }

cargo build -p audit-trail --quiet
suite="$(cargo test -p audit-trail-tests --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "e2e" and m.get("executable"):
        print(m["executable"])')"
[ -x "$suite" ] || { log "error: the e2e suite did not build (cargo test -p audit-trail-tests --no-run)"; exit 1; }

log "cargo pgrx install for PostgreSQL 17 (in the Debian 13 chroot), then the suite"
# shellcheck disable=SC2016 # expanded in the chroot
exec ./scripts/debian13.sh sh -c '
    set -e
    version="$1" suite="$2" golden="$3"; shift 3
    cd extension
    cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
    share="$("$PG_CONFIG" --sharedir)/extension"
    # As the Makefile'"'"'s install: the frozen scripts of earlier versions, and the committed
    # install script of this one must be what the build generated.
    install -m 644 sql/audit_trail--0.1.0.sql sql/audit_trail--0.2.0.sql "$share/"
    cmp -s "$share/audit_trail--$version.sql" "sql/audit_trail--$version.sql" ||
        { echo "e2e-debian13: the install script built for 17 differs from extension/sql/audit_trail--$version.sql" >&2; exit 1; }
    cd ../tests
    AUDIT_TRAIL_BIN="$PWD/../target/debug/audit-trail" exec env $golden "$suite" "$@"' \
    sh "$VERSION" "$suite" "${UPDATE_GOLDEN:+UPDATE_GOLDEN=1}" "$@"
