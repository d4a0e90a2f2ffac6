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

log() { printf 'e2e-debian13: %s\n' "$*" >&2; }

cargo build -p audit-trail --quiet
suite="$(cargo test -p audit-trail-tests --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "e2e" and m.get("executable"):
        print(m["executable"])')"
[ -x "$suite" ] || { log "error: the e2e suite did not build (cargo test -p audit-trail-tests --no-run)"; exit 1; }

exec ./scripts/debian13.sh --with-extension env AUDIT_TRAIL_BIN="$ROOT/target/debug/audit-trail" \
    sh -c 'cd tests && exec "$@"' sh "$suite" "$@"
