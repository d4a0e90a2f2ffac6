# shellcheck shell=bash
# Sourced by bench/scale.sh as its last step: the log's lifetime at scale (issue 11's
# "Measure": archive throughput, DuckDB over a year of archive, retention dropping a month).
# 1. `audit-trail archive --before <the current month>`: every closed partition not archived
#    yet, into the archive directory that already holds the month archived before; seconds,
#    rows/s, and Parquet bytes per event against the partitions' bytes per event;
# 2. DuckDB (.venv-tools, from `make setup`) reads every column of every row of that archive,
#    median of 3 rounds, and must count the archived rows;
# 3. retention keeps 12 months, archive first (`audit.set_retention('12 months')`), and
#    `audit-trail maintain` drops what is older: seconds, WAL (pg_current_wal_lsn before and
#    after), what it dropped.
# Uses scale.sh's SIDECAR, DB, BENCH_TMP, ROOT, HERE and lib.sh's functions; writes
# $BENCH_TMP/lifetime.md. On a cluster kept with BENCH_KEEP=1, once started again:
#   (. bench/lib.sh; export PGHOST=<kept dir> PGPORT=<its port> PGUSER=postgres;
#    BENCH_TMP=<kept dir> ROOT=$PWD HERE=$PWD/bench SIDECAR=target/release/audit-trail
#    DB="host=$PGHOST port=$PGPORT user=postgres dbname=scale"; . bench/scale_lifetime.sh)

LIFETIME_PYTHON="$ROOT/.venv-tools/bin/python"
[ -x "$LIFETIME_PYTHON" ] || die "$LIFETIME_PYTHON is missing: make setup"
ARCHIVE_DIR="$BENCH_TMP/archive"
mkdir -p "$ARCHIVE_DIR"
THIS_MONTH="$(bval scale "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD')")"
archived() { bval scale "SELECT count(*), coalesce(sum(rows), 0) FROM audit.archives" | tr '|' ' '; }
read -r PARTITIONS_BEFORE ROWS_BEFORE < <(archived)
STEP_STARTED="$(bval scale "SELECT now()")"
log "archive of every closed partition not archived yet"
T0="$(now)"
"$SIDECAR" archive --db "$DB" --output-dir "$ARCHIVE_DIR" --before "$THIS_MONTH" \
    >"$BENCH_TMP/archive-year.out" 2>"$BENCH_TMP/archive-year.err"
YEAR_S="$(seconds "$T0" "$(now)")"
read -r PARTITIONS_AFTER ARCHIVED_ROWS < <(archived)
YEAR_PARTITIONS=$((PARTITIONS_AFTER - PARTITIONS_BEFORE))
YEAR_ROWS=$((ARCHIVED_ROWS - ROWS_BEFORE))
YEAR_TABLE_BYTES="$(bval scale "SELECT coalesce(sum(pg_total_relation_size(partition::regclass)), 0)
    FROM audit.archives WHERE archived_at >= '$STEP_STARTED'")"
ARCHIVE_FILES="$(find "$ARCHIVE_DIR" -name '*.parquet' | wc -l)"
ARCHIVE_BYTES_ALL="$(find "$ARCHIVE_DIR" -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
[ "$YEAR_ROWS" -gt 0 ] || die "nothing left to archive before $THIS_MONTH (archived already?)"
read -r YEAR_RATE PARQUET_PER TABLE_PER <<<"$(awk -v r="$YEAR_ROWS" -v s="$YEAR_S" \
    -v p="$ARCHIVE_BYTES_ALL" -v a="$ARCHIVED_ROWS" -v t="$YEAR_TABLE_BYTES" \
    'BEGIN { printf "%.0f %.1f %.1f\n", r / s, p / a, t / r }')"
log "archived $YEAR_ROWS events of $YEAR_PARTITIONS partitions in ${YEAR_S}s"

log "DuckDB: every column of the archive, 3 rounds"
DUCK="$("$LIFETIME_PYTHON" "$HERE/duckdb_scan.py" "$ARCHIVE_DIR" 3)"
read -r DUCK_S DUCK_ROWS DUCK_FIRST DUCK_LAST _ DUCK_ROUNDS <<<"$DUCK"
DUCK_ROUNDS="${DUCK_ROUNDS// /, }"
[ "$DUCK_ROWS" = "$ARCHIVED_ROWS" ] || die "DuckDB counted $DUCK_ROWS rows; audit.archives records $ARCHIVED_ROWS"
DUCK_RATE="$(awk -v r="$DUCK_ROWS" -v s="$DUCK_S" 'BEGIN { printf "%.0f", r / s }')"

log "retention: keep 12 months, archive first"
bpsql -d scale -o /dev/null -c "SELECT audit.set_retention('12 months')"
bpsql -d postgres -o /dev/null -c "CHECKPOINT"
LSN0="$(bval scale "SELECT pg_current_wal_lsn()")"
T0="$(now)"
"$SIDECAR" maintain --db "$DB" >"$BENCH_TMP/retention.json"
RETENTION_S="$(seconds "$T0" "$(now)")"
RETENTION_WAL="$(bval scale "SELECT round((pg_current_wal_lsn() - '$LSN0'::pg_lsn) / 1048576.0, 2)")"
read -r PURGED DROPPED < <(python3 -c '
import json, sys
dropped = json.load(sys.stdin).get("dropped") or []
rows = sum(int(d.get("rows") or 0) for d in dropped)
names = ", ".join(d["partition"] for d in dropped) or "nothing"
print(rows, names)' <"$BENCH_TMP/retention.json")
log "retention dropped $DROPPED ($PURGED events) in ${RETENTION_S}s, ${RETENTION_WAL} MB of WAL"

cat >"$BENCH_TMP/lifetime.md" <<MD

## A year of archive, and retention

| step | result |
|---|---|
| \`audit-trail archive --before $THIS_MONTH\`: the $YEAR_PARTITIONS closed partitions not archived yet, $YEAR_ROWS events | $YEAR_S s, **$YEAR_RATE rows/s** |
| the archive: $ARCHIVED_ROWS events in $ARCHIVE_FILES Parquet files | $ARCHIVE_BYTES_ALL bytes: **$PARQUET_PER bytes/event**, against $TABLE_PER in the partitions (heap, TOAST, indexes) |
| DuckDB: every column of every row of the archive ($DUCK_FIRST to $DUCK_LAST), median of 3 | **$DUCK_S s** ($DUCK_RATE rows/s; rounds: $DUCK_ROUNDS) |
| retention keeps 12 months (archive first): \`audit-trail maintain\` drops $DROPPED, $PURGED events | **$RETENTION_S s, $RETENTION_WAL MB of WAL** |
MD
