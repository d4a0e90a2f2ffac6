#!/usr/bin/env bash
# `make bench-archive`: how fast `audit-trail archive` writes a month of events as Parquet,
# how small the files are next to the table, and how fast DuckDB scans them (docs/archive.md).
#
# In a throwaway cluster:
# 1. BENCH_EVENTS (1,000,000) events from bench/events.sql, moved into one past month (two
#    months before the current one, UTC) by rewriting its time expression (the only line that
#    differs), land in the default partition;
# 2. `audit-trail maintain` makes that month's partition and moves them into it (timed);
# 3. `audit-trail archive` writes the partition (release binary): rows/s, peak memory;
# 4. Parquet bytes per event vs the partition's pg_total_relation_size per event (heap,
#    TOAST and indexes);
# 5. DuckDB reads every column of every row (an aggregate over each), BENCH_ROUNDS (3)
#    times: median seconds; and `archive --check` (SHA-256 of every byte) once.
# Writes bench/results/archive-<date>.md. Needs target/release/audit-trail and the DuckDB
# virtualenv that scripts/setup.sh makes (.venv-tools).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_EVENTS="${BENCH_EVENTS:-1000000}"
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
SIDECAR="${AUDIT_TRAIL_BIN:-$ROOT/target/release/audit-trail}"
PYTHON="$ROOT/.venv-tools/bin/python"
[ -x "$SIDECAR" ] || die "$SIDECAR is missing: cargo build --release -p audit-trail"
[ -x "$PYTHON" ] || die "$PYTHON is missing: run scripts/setup.sh"

DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"

cluster_start
DB="host=$PGHOST port=$PGPORT user=postgres dbname=archive"
OUT="$BENCH_TMP/archive"
mkdir -p "$OUT"
now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# bench/events.sql spreads events over the 2 s before now(); here they go over the first 27
# days of a past month instead, so that they fill one closed partition.
MONTH_START="(date_trunc('month', (now() AT TIME ZONE 'UTC') - interval '2 months') AT TIME ZONE 'UTC')"
sed "s/now() - (:events - g) \* interval '2 seconds'/$MONTH_START + (g - 1) * (interval '27 days' \/ :events)/" \
    "$HERE/events.sql" >"$BENCH_TMP/events.sql"
grep -q "interval '27 days'" "$BENCH_TMP/events.sql" || die "bench/events.sql changed: update the rewrite in bench/archive.sh"

log "generating $BENCH_EVENTS events in one past month"
bpsql -d postgres -c "CREATE DATABASE archive"
bpsql -d archive -o /dev/null -c "CREATE EXTENSION audit_trail"
bpsql -d archive -v events="$BENCH_EVENTS" -f "$BENCH_TMP/events.sql"
bpsql -d postgres -c "CHECKPOINT"

log "maintain"
start="$(now)"
"$SIDECAR" maintain --db "$DB" >"$BENCH_TMP/maintain.json"
end="$(now)"
MAINTAIN_SECONDS="$(seconds "$start" "$end")"
PARTITION="$(bval archive "SELECT partition FROM audit.partitions
                            WHERE NOT is_default AND closed ORDER BY from_time LIMIT 1")"
[ -n "$PARTITION" ] || die "maintain made no closed partition"
bpsql -d archive -c "VACUUM (FREEZE, ANALYZE) $PARTITION"
ROWS="$(bval archive "SELECT count(*) FROM $PARTITION")"
TABLE_BYTES="$(bval archive "SELECT pg_total_relation_size('$PARTITION')")"
HEAP_BYTES="$(bval archive "SELECT pg_relation_size('$PARTITION')")"
log "maintain moved $ROWS events into $PARTITION in ${MAINTAIN_SECONDS}s"
bpsql -d postgres -c "CHECKPOINT"

# For reference: how long the server alone takes to send the rows archive reads (the same
# query, as binary COPY to /dev/null). It runs first, so both find the partition cached.
FROM_TIME="$(bval archive "SELECT from_time FROM audit.partitions WHERE partition = '$PARTITION'")"
TO_TIME="$(bval archive "SELECT to_time FROM audit.partitions WHERE partition = '$PARTITION'")"
log "reference: the server sends the rows to psql"
start="$(now)"
bpsql -d archive -c "COPY (SELECT id, occurred_at, actor, db_user, source, entity, action,
        subject_id, table_name, changed_fields, old_data::text, new_data::text,
        host(client_addr), application_name, context::text, details::text, txid::text
   FROM audit.events WHERE occurred_at >= '$FROM_TIME' AND occurred_at < '$TO_TIME'
  ORDER BY occurred_at, id) TO STDOUT (FORMAT binary)" >/dev/null
end="$(now)"
COPY_SECONDS="$(seconds "$start" "$end")"
LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"

log "archive"
TIME=()
if [ -x /usr/bin/time ]; then TIME=(/usr/bin/time -f '%M' -o "$BENCH_TMP/archive.rss"); fi
start="$(now)"
"${TIME[@]}" "$SIDECAR" archive --db "$DB" --output-dir "$OUT" >"$BENCH_TMP/archive.out"
end="$(now)"
cat "$BENCH_TMP/archive.out" >&2
ARCHIVE_SECONDS="$(seconds "$start" "$end")"
ARCHIVE_RATE="$(awk -v n="$ROWS" -v s="$ARCHIVE_SECONDS" 'BEGIN { printf "%.0f", n / s }')"
if [ -s "$BENCH_TMP/archive.rss" ]; then
    PEAK="$(awk '{ printf "%.1f MiB", $1 / 1024 }' "$BENCH_TMP/archive.rss")"
else
    PEAK="not measured (apt-get install time)"
fi
PARQUET_BYTES="$(find "$OUT" -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
FILES="$(find "$OUT" -name '*.parquet' | wc -l)"
per() { awk -v b="$1" -v n="$ROWS" 'BEGIN { printf "%.1f", b / n }'; }
PARQUET_PER="$(per "$PARQUET_BYTES")"
TABLE_PER="$(per "$TABLE_BYTES")"
HEAP_PER="$(per "$HEAP_BYTES")"
RATIO="$(awk -v a="$TABLE_BYTES" -v b="$PARQUET_BYTES" 'BEGIN { printf "%.1f", a / b }')"
log "archived $ROWS events in ${ARCHIVE_SECONDS}s ($ARCHIVE_RATE rows/s, peak $PEAK); $PARQUET_PER bytes/event vs $TABLE_PER in the table"

log "archive --check"
start="$(now)"
"$SIDECAR" archive --check "$OUT" >/dev/null
end="$(now)"
CHECK_SECONDS="$(seconds "$start" "$end")"

log "DuckDB full scan, $BENCH_ROUNDS rounds"
DUCK="$("$PYTHON" "$HERE/duckdb_scan.py" "$OUT" "$BENCH_ROUNDS")"
read -r DUCK_MEDIAN DUCK_ROWS _ _ DUCK_VERSION DUCK_ROUNDS_TEXT <<<"$DUCK"
DUCK_ROUNDS_TEXT="${DUCK_ROUNDS_TEXT// /, }"
[ "$DUCK_ROWS" = "$ROWS" ] || die "DuckDB counted $DUCK_ROWS rows, the partition holds $ROWS"
DUCK_RATE="$(awk -v n="$ROWS" -v s="$DUCK_MEDIAN" 'BEGIN { printf "%.0f", n / s }')"
log "DuckDB full scan: ${DUCK_MEDIAN}s median ($DUCK_RATE rows/s)"

MACHINE="$(machine_json)"
cat >"$RESULTS/archive-$DATE.md" <<MD
# Archive benchmark ($DATE)

\`make bench-archive\` (bench/archive.sh), PostgreSQL in a throwaway cluster; $ROWS events
from bench/events.sql in one past month ($PARTITION).

| measure | result |
|---|---|
| \`audit-trail maintain\`: make the partition, move the events out of the default partition | ${MAINTAIN_SECONDS} s |
| \`audit-trail archive\` of the partition (release build, zstd, 128k-row groups) | ${ARCHIVE_SECONDS} s, **$ARCHIVE_RATE rows/s**, peak memory $PEAK |
| for reference: the server alone sends the same rows (\`COPY (query) TO STDOUT (FORMAT binary)\` to /dev/null) | ${COPY_SECONDS} s |
| Parquet written | $PARQUET_BYTES bytes in $FILES file(s): **$PARQUET_PER bytes/event** |
| the partition in PostgreSQL (pg_total_relation_size: heap, TOAST, indexes) | $TABLE_BYTES bytes: **$TABLE_PER bytes/event** (heap alone $HEAP_PER); $RATIO× the Parquet |
| DuckDB $DUCK_VERSION, every column of every row, median of $BENCH_ROUNDS | **${DUCK_MEDIAN} s** ($DUCK_RATE rows/s; rounds: $DUCK_ROUNDS_TEXT) |
| \`audit-trail archive --check\` (size, SHA-256 of every byte, footer row count) | ${CHECK_SECONDS} s |

Notes: the generated events repeat a few shapes (40 actors, one table, similar rows), so
zstd and dictionary encoding do better on them than on a real log; take the bytes per event
as the best case and the ratio to the table as indicative. The archive streams the rows in
bounded memory (the peak is one 128k-row group being encoded, whatever the partition's size);
it encodes on a thread of its own while rows arrive, so its time is close to the server's
own time to send the rows (the reference line); on 2 cores the two compete for CPU.

Load average before the archive: $LOAD. Machine: $MACHINE
MD
log "wrote bench/results/archive-$DATE.md"
