#!/usr/bin/env bash
# Where does a capture variant spend its time? Runs one workload of the capture benchmark on
# one variant, in a throwaway cluster, under `perf record` (the server backends only, not the
# client), and writes the top of `perf report` to bench/results/profile-<workload>-<variant>.txt.
#
#   bench/profile.sh WORKLOAD VARIANT       e.g. bench/profile.sh insert audit_trail
#
# WORKLOAD: insert, update, delete (pgbench, BENCH_SECONDS, default 8) or bulk_update,
# bulk_insert, bulk_touch (one statement). VARIANT: none, audit_trail, audit_trail_nonotify,
# plpgsql. Needs perf (`perf stat -e instructions true` must work). Symbols come from the
# binaries' exported symbols: without debug packages, static functions of PostgreSQL show up
# under their nearest exported neighbour.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

WORKLOAD="${1:?usage: $0 WORKLOAD VARIANT}"
VARIANT="${2:?usage: $0 WORKLOAD VARIANT}"
BENCH_SECONDS="${BENCH_SECONDS:-8}"
BENCH_ROWS="${BENCH_ROWS:-200000}"
BENCH_CLIENTS="${BENCH_CLIENTS:-2}"
FREQ="${PERF_FREQ:-499}"
command -v perf >/dev/null || die "perf is not installed"
OUT="$HERE/results/profile-$WORKLOAD-$VARIANT.txt"
mkdir -p "$HERE/results"

cluster_start
DATA="$BENCH_TMP/perf.data"
bpsql -d postgres -c "CREATE DATABASE run"
bpsql -d run -v rows="$BENCH_ROWS" -f "$HERE/schema.sql"
setup_variant "$VARIANT" run
if [ "$VARIANT" = audit_trail_nonotify ]; then
    bpsql -d postgres -c "ALTER DATABASE run SET audit.notify = off"
fi
bpsql -d run -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT"

case "$WORKLOAD" in
insert | update | delete)
    "$BINDIR/pgbench" -n -M prepared -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" \
        -T "$((BENCH_SECONDS + 3))" -D k=-1 -D clients="$BENCH_CLIENTS" -D rows="$BENCH_ROWS" \
        -f "$HERE/pgbench/$WORKLOAD.sql" run >"$BENCH_TMP/pgbench.out" 2>&1 &
    bench_pid=$!
    sleep 1
    pids="$(bval run "SELECT string_agg(pid::text, ',') FROM pg_stat_activity
                       WHERE application_name = 'pgbench' AND pid <> pg_backend_pid()")"
    [ -n "$pids" ] || die "no pgbench backends found"
    log "perf record -p $pids for ${BENCH_SECONDS}s"
    perf record -F "$FREQ" --call-graph dwarf,16384 -o "$DATA" -p "$pids" -- sleep "$BENCH_SECONDS" 2>"$BENCH_TMP/perf.log"
    wait "$bench_pid" || true
    grep '^tps' "$BENCH_TMP/pgbench.out" >&2 || cat "$BENCH_TMP/pgbench.out" >&2
    ;;
bulk_update | bulk_insert | bulk_touch)
    sql="$(bulk_sql "$WORKLOAD")"
    # One psql session: learn its backend's pid, attach perf to it, then run the statement.
    mkfifo "$BENCH_TMP/psql.in"
    "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -d run <"$BENCH_TMP/psql.in" \
        >"$BENCH_TMP/psql.out" 2>&1 &
    psql_pid=$!
    exec 3>"$BENCH_TMP/psql.in"
    echo "SELECT pg_backend_pid();" >&3
    for _ in $(seq 1 100); do [ -s "$BENCH_TMP/psql.out" ] && break; sleep 0.1; done
    pid="$(head -n 1 "$BENCH_TMP/psql.out")"
    perf record -F "$FREQ" --call-graph dwarf,16384 -o "$DATA" -p "$pid" 2>"$BENCH_TMP/perf.log" &
    perf_pid=$!
    sleep 1
    printf '\\timing on\n%s;\n\\q\n' "$sql" >&3
    exec 3>&-
    wait "$psql_pid"
    cat "$BENCH_TMP/psql.out" >&2
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    ;;
*) die "unknown workload $WORKLOAD" ;;
esac

{
    echo "# perf profile: workload $WORKLOAD, variant $VARIANT ($(date +%Y-%m-%d)), server backends only"
    echo
    echo "## time per shared object (self)"
    perf report -i "$DATA" --no-children --sort dso --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | head -8
    echo
    echo "## where the time goes (inclusive), by call path"
    perf script -i "$DATA" 2>/dev/null | python3 "$HERE/perf_breakdown.py" \
        PortalRun:2 CommitTransactionCommand:2 AfterTriggerEndQuery:1 audit_capture:2 \
        plpgsql_exec_trigger:2 ExecSimpleRelationInsert:2 ExecInsertIndexTuples:2
    echo
    echo "## self time of the top functions"
    perf report -i "$DATA" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | grep -v ' 0x0000' | sed 's/ *-  *- *$//' | head -40
} >"$OUT"
log "wrote ${OUT#"$HERE/../"}"
head -40 "$OUT"
