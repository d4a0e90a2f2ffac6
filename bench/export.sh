#!/usr/bin/env bash
# `make bench-export`: how fast `audit-trail export` writes a large log, against the floor of
# PostgreSQL's own COPY through psql's \copy, on the same rows and columns in the same order.
#
# In a throwaway cluster: BENCH_EVENTS (1,000,000) realistic events are generated straight into
# audit.events; then BENCH_ROUNDS (3) interleaved rounds (tool order rotating) each run
#   audit-trail export --output FILE
#   psql -c "\copy (SELECT <the export's columns> FROM audit.events ORDER BY occurred_at, id)
#            TO FILE WITH (FORMAT csv, HEADER)"
# under GNU time (wall time, peak RSS and CPU time of the client process). Writes
# bench/results/export-<date>.{md,json,csv}. Needs target/release/audit-trail (make bench-export
# builds it) and /usr/bin/time (GNU time; make bench-export installs it if missing).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_EVENTS="${BENCH_EVENTS:-1000000}"
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
SIDECAR="${AUDIT_TRAIL_BIN:-$ROOT/target/release/audit-trail}"
TIME=/usr/bin/time

[ -x "$SIDECAR" ] || die "$SIDECAR is missing: cargo build --release -p audit-trail"
"$TIME" -f '%e' true 2>/dev/null || die "$TIME is not GNU time: apt-get install time"
[ -f "$("$PG_CONFIG" --sharedir)/extension/audit_trail.control" ] ||
    die "audit_trail is not installed into $("$PG_CONFIG" --sharedir); run make install"

DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
STARTED="$(date +%s)"

cluster_start
RAW="$BENCH_TMP/raw.csv"
echo "round,tool,wall_seconds,max_rss_kb,client_cpu_seconds,rows,file_bytes" >"$RAW"

log "generating $BENCH_EVENTS events"
bpsql -d postgres -c "CREATE DATABASE export"
bpsql -d export -o /dev/null -c "CREATE EXTENSION audit_trail" -c "CREATE EXTENSION pg_prewarm"
bpsql -d export -v events="$BENCH_EVENTS" -f "$HERE/events.sql"
bval export "SELECT count(pg_prewarm(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'audit' AND c.relname LIKE 'events%'" >/dev/null
bpsql -d postgres -c "CHECKPOINT"
TABLE_SIZE="$(bval export "SELECT pg_size_pretty(pg_total_relation_size('audit.events'))")"
NEW_DATA_BYTES="$(bval export "SELECT round(avg(length(new_data::text))) FROM audit.events")"
log "audit.events: $TABLE_SIZE with indexes, new_data ~$NEW_DATA_BYTES bytes as text"

# The export's own query (sidecar/src/event_row.rs SELECT_EVENTS), for COPY.
COLUMNS="id, occurred_at, actor, db_user, source, entity, action, subject_id, table_name,
         to_json(changed_fields)::text, old_data::text, new_data::text, host(client_addr),
         application_name, context::text, details::text, txid::text"
COPY_SQL="\\copy (SELECT $COLUMNS FROM audit.events ORDER BY occurred_at, id) TO '$BENCH_TMP/out.csv' WITH (FORMAT csv, HEADER)"
PLAN="$(bval export "EXPLAIN SELECT $COLUMNS FROM audit.events ORDER BY occurred_at, id" | head -n 1)"

run_tool() {
    local round="$1" tool="$2" out="$BENCH_TMP/out.csv" wall rss user sys cpu rows bytes
    rm -f "$out"
    case "$tool" in
    audit-trail)
        "$TIME" -f '%e %M %U %S' -o "$BENCH_TMP/time" "$SIDECAR" export \
            --db "host=$PGHOST port=$PGPORT user=postgres dbname=export" --output "$out" \
            2>"$BENCH_TMP/tool.err" || {
            cat "$BENCH_TMP/tool.err" >&2
            die "audit-trail export failed"
        }
        ;;
    psql-copy)
        PGTZ=UTC "$TIME" -f '%e %M %U %S' -o "$BENCH_TMP/time" "$BINDIR/psql" -X -q \
            -v ON_ERROR_STOP=1 -d export -c "$COPY_SQL" 2>"$BENCH_TMP/tool.err" || {
            cat "$BENCH_TMP/tool.err" >&2
            die "psql \\copy failed"
        }
        ;;
    esac
    read -r wall rss user sys <"$BENCH_TMP/time"
    cpu="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')"
    rows=$(($(wc -l <"$out") - 1))
    bytes="$(stat -c %s "$out")"
    rm -f "$out"
    echo "$round,$tool,$wall,$rss,$cpu,$rows,$bytes" >>"$RAW"
    log "round $round  $tool: ${wall}s, client CPU ${cpu}s, peak RSS $((rss / 1024)) MiB, $rows rows, $((bytes / 1048576)) MiB"
}

TOOLS=(audit-trail psql-copy)
for round in $(seq 1 "$BENCH_ROUNDS"); do
    for i in "${!TOOLS[@]}"; do
        run_tool "$round" "${TOOLS[$(((i + round - 1) % ${#TOOLS[@]}))]}"
    done
done

MACHINE="$(machine_json)"
ELAPSED=$(($(date +%s) - STARTED))
cp "$RAW" "$RESULTS/export-$DATE.csv"
python3 "$HERE/report.py" export --raw "$RAW" --machine "$MACHINE" \
    --param events="$BENCH_EVENTS" --param rounds="$BENCH_ROUNDS" --param table_size="$TABLE_SIZE" \
    --param new_data_bytes="$NEW_DATA_BYTES" --param elapsed="$ELAPSED" --param plan="$PLAN" \
    --md "$RESULTS/export-$DATE.md" --json "$RESULTS/export-$DATE.json"
log "wrote bench/results/export-$DATE.md, .json and .csv (${ELAPSED}s)"
