#!/usr/bin/env bash
# `make bench-undo`: what history and undo cost (docs/undo.md), in a throwaway cluster:
# 1. a log of BENCH_EVENTS (1,000,000) events of other rows, then one contact changed
#    BENCH_SUBJECT_EVENTS (10,000) times: audit.row_as_of (now, and halfway through its
#    history) and audit.history (all of it), medians of BENCH_ROUNDS (20) calls, timed in
#    the server (clock_timestamp around each call);
# 2. an import of BENCH_IMPORT_ROWS (100,000) contacts in one INSERT, then
#    audit.revert_transaction of it: wall time of each, three imports and reverts in turn,
#    medians, and the revert's time per row.
# Writes bench/results/undo-<date>.md.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_EVENTS="${BENCH_EVENTS:-1000000}"
BENCH_SUBJECT_EVENTS="${BENCH_SUBJECT_EVENTS:-10000}"
BENCH_IMPORT_ROWS="${BENCH_IMPORT_ROWS:-100000}"
BENCH_ROUNDS="${BENCH_ROUNDS:-20}"
DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"

cluster_start
bpsql -d postgres -c "CREATE DATABASE undo"
q() { bpsql -d undo "$@"; }
q -c "CREATE EXTENSION audit_trail" \
  -c "CREATE SCHEMA crm" \
  -c "CREATE TABLE crm.contacts (id bigint PRIMARY KEY, name text NOT NULL, email text,
                                 phone text, updated_at timestamptz NOT NULL DEFAULT now())" \
  -c "SELECT audit.track('crm.contacts', 'contact', ignore_columns => '{updated_at}')"

log "the log: $BENCH_EVENTS events of other rows"
q -c "INSERT INTO crm.contacts (id, name, email)
      SELECT g, 'contact ' || g, 'c' || g || '@example.com'
        FROM generate_series(1000001, 1000000 + $BENCH_EVENTS) g"
log "one contact changed $BENCH_SUBJECT_EVENTS times"
q -c "INSERT INTO crm.contacts (id, name) VALUES (1, 'Ann')" \
  -c "DO \$\$ BEGIN
        FOR i IN 1..$BENCH_SUBJECT_EVENTS LOOP
          UPDATE crm.contacts SET phone = i::text WHERE id = 1;
        END LOOP;
      END \$\$" \
  -c "VACUUM ANALYZE" -c "CHECKPOINT"

# Median milliseconds of BENCH_ROUNDS runs of the query $1, timed in the server. Its result is
# fetched (EXECUTE ... INTO), so the call cannot be planned away.
median_ms() {
    bval undo "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2)
                 FROM (SELECT audit_bench_time(\$q\$$1\$q\$) AS ms
                         FROM generate_series(1, $BENCH_ROUNDS)) t"
}
q -c "CREATE FUNCTION audit_bench_time(expr text) RETURNS float8 LANGUAGE plpgsql AS \$\$
      DECLARE s timestamptz := clock_timestamp();
             ignored text;
      BEGIN EXECUTE expr INTO ignored;
            RETURN extract(epoch FROM clock_timestamp() - s) * 1000; END \$\$"
halfway="$(bval undo "SELECT occurred_at FROM audit.events WHERE entity = 'contact' AND subject_id = '1'
                      ORDER BY occurred_at, id OFFSET $((BENCH_SUBJECT_EVENTS / 2)) LIMIT 1")"
total="$(bval undo "SELECT count(*) FROM audit.events")"
log "timing row_as_of and history over $total events"
now_ms="$(median_ms "SELECT audit.row_as_of('crm.contacts', '1', now())::text")"
half_ms="$(median_ms "SELECT audit.row_as_of('crm.contacts', '1', '$halfway')::text")"
history_ms="$(median_ms "SELECT count(*) FROM audit.history('crm.contacts', '1')")"
rows="$(bval undo "SELECT count(*) FROM audit.history('crm.contacts', '1')")"
check="$(bval undo "SELECT audit.row_as_of('crm.contacts', '1', now()) ->> 'phone'")"
[ "$check" = "$BENCH_SUBJECT_EVENTS" ] || die "row_as_of says phone $check, not $BENCH_SUBJECT_EVENTS"

log "import and revert of $BENCH_IMPORT_ROWS rows, three times"
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
imports=() reverts=()
for round in 1 2 3; do
    start="$(date +%s.%N)"
    txid="$(bval undo "WITH i AS (INSERT INTO crm.contacts (id, name, email)
                                  SELECT g, 'imported ' || g, 'i' || g || '@example.com'
                                    FROM generate_series(11, 10 + $BENCH_IMPORT_ROWS) g)
                       SELECT pg_current_xact_id()")"
    mid="$(date +%s.%N)"
    reverted="$(bval undo "SELECT audit.revert_transaction('$txid')")"
    end="$(date +%s.%N)"
    [ "$reverted" = "$BENCH_IMPORT_ROWS" ] || die "revert_transaction put back $reverted events"
    left="$(bval undo "SELECT count(*) FROM crm.contacts WHERE name LIKE 'imported %'")"
    [ "$left" = 0 ] || die "$left imported rows left after the revert"
    imports+=("$(ms "$start" "$mid")")
    reverts+=("$(ms "$mid" "$end")")
    log "round $round: import ${imports[-1]} ms, revert ${reverts[-1]} ms"
    q -c "VACUUM crm.contacts"
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
import_ms="$(median "${imports[@]}")"
revert_ms="$(median "${reverts[@]}")"

out="$RESULTS/undo-$DATE.md"
{
    echo "# History and undo, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "\`make bench-undo\` (bench/undo.sh). Machine: $(machine_json)"
    echo
    echo "A log of $total events; one contact with $rows events (its history's rows)."
    echo "Medians of $BENCH_ROUNDS calls, timed in the server:"
    echo
    echo "| call | ms |"
    echo "|---|---:|"
    echo "| \`audit.row_as_of\` now | $now_ms |"
    echo "| \`audit.row_as_of\` halfway through its history | $half_ms |"
    echo "| \`audit.history\`, all $rows versions | $history_ms |"
    echo
    echo "An import of $BENCH_IMPORT_ROWS contacts in one INSERT and its \`audit.revert_transaction\`,"
    echo "medians of three rounds (wall time through psql): import $import_ms ms, revert $revert_ms ms"
    echo "($(awk -v r="$revert_ms" -v n="$BENCH_IMPORT_ROWS" 'BEGIN { printf "%.1f", r * 1000 / n }') µs a row;"
    echo "rounds: imports ${imports[*]} ms, reverts ${reverts[*]} ms)."
} >"$out"
cat "$out"
log "wrote $out"
