#!/usr/bin/env bash
# `make bench-wal`: writers under WAL capture (docs/wal-capture.md), side by side in one run:
#   none          no auditing, wal_level = logical (the base of the ratios)
#   none_replica  no auditing, wal_level = replica (PostgreSQL's default)
#   wal_capture   the portable install (tables in the publication, REPLICA IDENTITY FULL)
#                 with `audit-trail capture` running on the same server, as it would
#   audit_trail   the extension's triggers
# Workloads: single-row INSERT, UPDATE and DELETE (pgbench, as make bench runs them), the same
# INSERT rate-limited to BENCH_RATE tx/s (the lag at a steady rate), and a 200,000-row bulk
# UPDATE and INSERT ... SELECT. For wal_capture also: the service's throughput (events
# written per second, from the workload's start to its last event written) and its lag,
# now() minus the commit time of the newest transaction written, sampled every 100 ms while
# the workload runs (p50, p99). Writes bench/results/wal-<date>.{md,json,csv}.
#
# Settings: BENCH_SECONDS (10), BENCH_ROUNDS (3), BENCH_ROWS (200000), BENCH_CLIENTS (2),
# BENCH_RATE (1000), BENCH_WORKLOADS, BENCH_TAG, and those of bench/lib.sh.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_SECONDS="${BENCH_SECONDS:-10}"
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
BENCH_ROWS="${BENCH_ROWS:-200000}"
BENCH_CLIENTS="${BENCH_CLIENTS:-2}"
BENCH_RATE="${BENCH_RATE:-1000}"
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-insert update delete insert_rate bulk_update bulk_insert}"
VARIANTS=(none none_replica wal_capture audit_trail)
AUDIT_TRAIL="${AUDIT_TRAIL_BIN:-$HERE/../target/release/audit-trail}"
[ -x "$AUDIT_TRAIL" ] || die "no $AUDIT_TRAIL: cargo build --release -p audit-trail"
[ -f "$("$PG_CONFIG" --sharedir)/extension/audit_trail.control" ] ||
    die "audit_trail is not installed into $("$PG_CONFIG" --sharedir); run make install"

DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
STARTED="$(date +%s)"

cluster_start
RAW="$BENCH_TMP/raw.csv"
echo "round,workload,variant,metric,value,transactions,events,expected_events,check" >"$RAW"

# wal_level takes a restart. No logical slot may exist when it goes down to replica.
set_wal_level() {
    [ "$(bval postgres "SHOW wal_level")" = "$1" ] && return
    bpsql -d postgres -c "ALTER SYSTEM SET wal_level = '$1'"
    as_postgres "$BINDIR/pg_ctl" -D "$BENCH_TMP/data" -l "$BENCH_TMP/server.log" -w -t 120 \
        restart >/dev/null || die "the cluster did not restart with wal_level = $1"
}
set_wal_level logical

log "loading $BENCH_ROWS contacts"
bpsql -d postgres -c "CREATE DATABASE bench_base"
bpsql -d bench_base -v rows="$BENCH_ROWS" -f "$HERE/schema.sql"
for v in none audit_trail wal_capture; do
    bpsql -d postgres -c "CREATE DATABASE tpl_$v TEMPLATE bench_base"
    case "$v" in
    none) ;;
    audit_trail) setup_variant audit_trail "tpl_$v" ;;
    wal_capture)
        # Installed as the bench's superuser here; the slot it makes is dropped (each run
        # makes its own: a slot belongs to one database).
        "$AUDIT_TRAIL" install --wal-capture --slot tpl_wal --db "dbname=tpl_$v" 2>/dev/null
        bpsql -d postgres -o /dev/null -c "SELECT pg_drop_replication_slot('tpl_wal')"
        bpsql -d "tpl_$v" -o /dev/null \
            -c "SELECT audit.track('bench.contacts', 'contact', ignore_columns => '{updated_at}')" \
            -c "SELECT audit.track('bench.documents', 'document')"
        ;;
    esac
    bpsql -d "tpl_$v" -c "VACUUM (FREEZE, ANALYZE)"
done
bpsql -d postgres -c "DROP DATABASE bench_base" -c "CHECKPOINT"

template_of() { case "$1" in none_replica) echo none ;; *) echo "$1" ;; esac; }

fresh_db() {
    bpsql -d postgres -c "DROP DATABASE IF EXISTS run_$1" \
        -c "CREATE DATABASE run_$1 TEMPLATE tpl_$(template_of "$1")"
    bval "run_$1" "SELECT count(pg_prewarm(c.oid)) FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname IN ('bench', 'audit') AND c.relkind IN ('r', 'i')" >/dev/null
    bpsql -d postgres -c "CHECKPOINT"
}

events_of() {
    case "$1" in
    audit_trail | wal_capture)
        bval "run_$1" "SELECT count(*) FROM audit.events WHERE action IN ('create', 'update', 'delete')" ;;
    *) echo "" ;;
    esac
}

# The capture service of a wal_capture run, and the sampler of its lag.
SERVICE_PID="" SAMPLER_PID=""
start_capture() {
    "$AUDIT_TRAIL" capture --slot run_wal --poll-ms 100 --db "dbname=run_wal_capture" \
        2>>"$BENCH_TMP/capture.log" &
    SERVICE_PID=$!
    for _ in $(seq 1 100); do
        [ "$(bval postgres "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'run_wal'")" = 1 ] && break
        sleep 0.1
    done
    rm -f "$BENCH_TMP/lag"
    (
        while :; do
            bval run_wal_capture "SELECT extract(epoch FROM now() - commit_time) * 1000
                                    FROM audit.capture_progress WHERE commit_time > '-infinity'" \
                >>"$BENCH_TMP/lag" 2>/dev/null || true
            sleep 0.1
        done
    ) &
    SAMPLER_PID=$!
}

# Waits for every expected event, then stops the service; prints the seconds it took from
# $1 (epoch seconds, the workload's start).
finish_capture() {
    local started="$1" expected="$2" n=0 deadline=$((SECONDS + 900))
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    while [ "$(events_of wal_capture)" -lt "$expected" ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "capture did not write $expected events in 15 min"
        kill -0 "$SERVICE_PID" 2>/dev/null || die "the capture service stopped: $(tail -3 "$BENCH_TMP/capture.log")"
        sleep 0.05
        n=$((n + 1))
    done
    local done_at
    done_at="$(date +%s.%N)"
    kill "$SERVICE_PID" && wait "$SERVICE_PID" 2>/dev/null || true
    # The backend lets go of the slot a moment after the service's exit.
    for _ in $(seq 1 100); do
        [ "$(bval postgres "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'run_wal' AND active")" = 0 ] && break
        sleep 0.1
    done
    bpsql -d postgres -o /dev/null -c "SELECT pg_drop_replication_slot('run_wal')"
    awk -v a="$started" -v b="$done_at" 'BEGIN { printf "%.3f", b - a }'
}

lag_percentile() {
    python3 - "$BENCH_TMP/lag" "$1" <<'PY'
import sys
values = sorted(float(l) for l in open(sys.argv[1]) if l.strip())
if not values:
    print("")
else:
    p = float(sys.argv[2])
    print(f"{values[min(len(values) - 1, int(p / 100 * len(values)))]:.1f}")
PY
}

record() { echo "$1" >>"$RAW"; }

run_one() {
    local round="$1" w="$2" v="$3" out tps xacts events expected check=ok started seconds ms
    fresh_db "$v"
    [ "$v" = wal_capture ] && start_capture
    started="$(date +%s.%N)"
    case "$w" in
    insert | update | delete | insert_rate)
        local script="$w" length=(-T "$BENCH_SECONDS") rate=()
        [ "$w" = delete ] && length=(-t "$((BENCH_ROWS / BENCH_CLIENTS))")
        [ "$w" = insert_rate ] && { script=insert; rate=(-R "$BENCH_RATE"); }
        out="$("$BINDIR/pgbench" -n -M prepared -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" \
            "${length[@]}" "${rate[@]}" -D k=-1 -D clients="$BENCH_CLIENTS" -D rows="$BENCH_ROWS" \
            -f "$HERE/pgbench/$script.sql" "run_$v" 2>&1)" || { printf '%s\n' "$out" >&2; die "pgbench $w on $v"; }
        tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")"
        xacts="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
        expected="$xacts"
        ;;
    bulk_update | bulk_insert)
        out="$(bpsql -d "run_$v" -c '\timing on' -c "$(bulk_sql "$w")")"
        ms="$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -n 1)"
        seconds="$(awk -v ms="$ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
        xacts=1
        expected="$BENCH_ROWS"
        ;;
    esac
    local capture_seconds=""
    [ "$v" = wal_capture ] && capture_seconds="$(finish_capture "$started" "$expected")"
    events="$(events_of "$v")"
    [ -z "$events" ] || [ "$events" = "$expected" ] || check="events!=expected"
    [ -n "$events" ] || expected=""
    local value metric
    if [ -n "${tps:-}" ]; then metric=tps value="$tps"; else metric=seconds value="$seconds"; fi
    [ "$w" = insert_rate ] && metric=tps
    record "$round,$w,$v,$metric,$value,$xacts,$events,$expected,$check"
    if [ "$v" = wal_capture ]; then
        record "$round,$w,$v,capture_eps,$(awk -v e="$events" -v s="$capture_seconds" 'BEGIN { printf "%.0f", e / s }'),$xacts,$events,$expected,$check"
        local p50 p99
        p50="$(lag_percentile 50)" p99="$(lag_percentile 99)"
        [ -z "$p50" ] || record "$round,$w,$v,lag_p50_ms,$p50,$xacts,$events,$expected,$check"
        [ -z "$p99" ] || record "$round,$w,$v,lag_p99_ms,$p99,$xacts,$events,$expected,$check"
        log "round $round  $w  $v: $value $metric; captured $events events in ${capture_seconds}s; lag p50 ${p50:-?} ms, p99 ${p99:-?} ms $check"
    else
        log "round $round  $w  $v: $value $metric${events:+ ($events events)} $check"
    fi
    tps=""
    bpsql -d postgres -c "DROP DATABASE run_$v"
}

# Each round: the replica runs first (one restart down, one up), then the others in an order
# that rotates from round to round.
for round in $(seq 1 "$BENCH_ROUNDS"); do
    set_wal_level replica
    for w in "${WORKLOADS[@]}"; do run_one "$round" "$w" none_replica; done
    set_wal_level logical
    order=(none wal_capture audit_trail)
    order=("${order[@]:$(((round - 1) % 3))}" "${order[@]:0:$(((round - 1) % 3))}")
    for w in "${WORKLOADS[@]}"; do
        for v in "${order[@]}"; do run_one "$round" "$w" "$v"; done
    done
done

MACHINE="$(machine_json)"
ELAPSED=$(($(date +%s) - STARTED))
cp "$RAW" "$RESULTS/wal-$DATE.csv"
python3 "$HERE/report.py" capture --raw "$RAW" --machine "$MACHINE" \
    --param seconds="$BENCH_SECONDS" --param rounds="$BENCH_ROUNDS" --param rows="$BENCH_ROWS" \
    --param clients="$BENCH_CLIENTS" --param rate="$BENCH_RATE" --param elapsed="$ELAPSED" \
    --md "$RESULTS/wal-$DATE.md" --json "$RESULTS/wal-$DATE.json"
log "wrote bench/results/wal-$DATE.md, .json and .csv (${ELAPSED}s)"
