#!/usr/bin/env bash
# `make bench`: the capture benchmark. Compares, on identical data, three variants:
#   none         no auditing
#   audit_trail  audit.track('bench.contacts', 'contact', ignore_columns => '{updated_at}')
#   plpgsql      the reference PL/pgSQL row trigger of bench/plpgsql_peer.sql
# on six workloads (see bench/README.md), interleaved round by round, in a throwaway
# cluster of its own. Writes bench/results/capture-<date>.{md,json,csv}.
#
# Settings (environment; see bench/README.md): BENCH_SECONDS (15) per pgbench run,
# BENCH_ROUNDS (3), BENCH_ROWS (200000), BENCH_CLIENTS (2), BENCH_QUERY_MODE (pgbench -M,
# prepared), BENCH_WORKLOADS (all six, space-separated), BENCH_VARIANTS (none audit_trail
# plpgsql; also audit_trail_nonotify: the extension with audit.notify = off, and
# audit_trail_tenant: tracked with tenant_column, each event naming its organization), BENCH_FSYNC (on),
# BENCH_SHARED_BUFFERS (1GB), BENCH_TAG (result files become capture-<date>-<tag>.*),
# BENCH_KEEP=1 (keep the stopped cluster's directory for inspection).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_SECONDS="${BENCH_SECONDS:-15}"
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
BENCH_ROWS="${BENCH_ROWS:-200000}"
BENCH_CLIENTS="${BENCH_CLIENTS:-2}"
BENCH_QUERY_MODE="${BENCH_QUERY_MODE:-prepared}"
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-insert update delete bulk_update bulk_insert bulk_touch wide_update}"
read -r -a VARIANTS <<<"${BENCH_VARIANTS:-none audit_trail plpgsql}"
[ "${VARIANTS[0]}" = none ] || die "BENCH_VARIANTS must start with none (the ratios' base)"

# The extension under test is the one installed in the system PostgreSQL (make install).
[ -f "$("$PG_CONFIG" --sharedir)/extension/audit_trail.control" ] ||
    die "audit_trail is not installed into $("$PG_CONFIG" --sharedir); run make install"

DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
STARTED="$(date +%s)"

cluster_start
RAW="$BENCH_TMP/raw.csv"
echo "round,workload,variant,metric,value,transactions,events,expected_events,check" >"$RAW"

# --- Templates: one database of data, then one per variant ---------------------------------

log "loading $BENCH_ROWS contacts"
bpsql -d postgres -c "CREATE DATABASE bench_base"
bpsql -d bench_base -v rows="$BENCH_ROWS" -f "$HERE/schema.sql"

for v in "${VARIANTS[@]}"; do
    bpsql -d postgres -c "CREATE DATABASE tpl_$v TEMPLATE bench_base"
    setup_variant "$v" "tpl_$v"
    bpsql -d "tpl_$v" -c "VACUUM (FREEZE, ANALYZE)"
done
bpsql -d postgres -c "DROP DATABASE bench_base" -c "CHECKPOINT"

# --- One measurement ----------------------------------------------------------------------

# A fresh database for every measurement, copied from the variant's template: every run
# starts from the same rows, an empty event table and warm shared buffers, after a
# checkpoint, with nothing left dirty by the previous run.
fresh_db() {
    local v="$1"
    bpsql -d postgres -c "DROP DATABASE IF EXISTS run_$v" -c "CREATE DATABASE run_$v TEMPLATE tpl_$v"
    # Per-database settings are not copied from the template.
    if [ "$v" = audit_trail_nonotify ]; then
        bpsql -d postgres -c "ALTER DATABASE run_$v SET audit.notify = off"
    fi
    bval "run_$v" "SELECT count(pg_prewarm(c.oid)) FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname IN ('bench', 'audit', 'audit_peer') AND c.relkind IN ('r', 'i')" \
        >/dev/null
    bpsql -d postgres -c "CHECKPOINT"
}

drop_db() { bpsql -d postgres -c "DROP DATABASE run_$1"; }

count_events() {
    local table
    table="$(events_table "$1")"
    # Captured row events only: audit_trail also records that the table was tracked.
    if [ -n "$table" ]; then
        bval "run_$1" "SELECT count(*) FROM $table WHERE action IN ('create', 'update', 'delete')"
    else echo ""; fi
}

run_pgbench() {
    local round="$1" w="$2" v="$3" out tps xacts events expected check=ok
    # Single-row DELETEs are so fast that BENCH_SECONDS would exhaust the table: that run
    # deletes every preloaded row once (rows / clients transactions per client) instead.
    local length=(-T "$BENCH_SECONDS")
    [ "$w" = delete ] && length=(-t "$((BENCH_ROWS / BENCH_CLIENTS))")
    fresh_db "$v"
    if ! out="$("$BINDIR/pgbench" -n -M "$BENCH_QUERY_MODE" -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" \
        "${length[@]}" -D k=-1 -D clients="$BENCH_CLIENTS" -D rows="$BENCH_ROWS" \
        -f "$HERE/pgbench/$w.sql" "run_$v" 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "pgbench $w on $v failed"
    fi
    tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")"
    xacts="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
    [ -n "$tps" ] && [ -n "$xacts" ] || {
        printf '%s\n' "$out" >&2
        die "could not read pgbench's output"
    }
    events="$(count_events "$v")"
    expected=""
    [ -n "$events" ] && expected="$xacts"
    if [ -n "$events" ] && [ "$events" != "$expected" ]; then check="events!=transactions"; fi
    if [ "$w" = delete ]; then
        local deleted
        deleted="$(bval "run_$v" "SELECT $BENCH_ROWS - count(*) FROM bench.contacts")"
        if [ "$deleted" != "$xacts" ]; then
            check="only $deleted of $xacts deletes hit a row (raise BENCH_ROWS)"
        fi
    fi
    drop_db "$v"
    echo "$round,$w,$v,tps,$tps,$xacts,$events,$expected,$check" >>"$RAW"
    log "round $round  $w  $v: $tps tps ($xacts transactions${events:+, $events events}) $check"
}

run_bulk() {
    local round="$1" w="$2" v="$3" out ms seconds events expected="" check=ok
    fresh_db "$v"
    out="$(bpsql -d "run_$v" -c '\timing on' -c "$(bulk_sql "$w")")"
    ms="$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -n 1)"
    [ -n "$ms" ] || die "could not read psql's timing: $out"
    seconds="$(awk -v ms="$ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
    events="$(count_events "$v")"
    if [ -n "$events" ]; then
        case "$w" in
        bulk_touch) expected=0 ;;
        *) expected="$BENCH_ROWS" ;;
        esac
        [ "$events" = "$expected" ] || check="events!=expected"
    fi
    drop_db "$v"
    echo "$round,$w,$v,seconds,$seconds,1,$events,$expected,$check" >>"$RAW"
    log "round $round  $w  $v: $seconds s${events:+ ($events events)} $check"
}

# The wide-row UPDATE: its time, and the memory of the backend that runs it, watched from
# /proc while it runs: RssAnon (private memory: what capture's buffers would grow; sampled
# every 20 ms, the peak kept) and VmHWM (the kernel's peak of resident memory, which also
# counts the shared buffers the backend touched).
run_wide() {
    local round="$1" w="$2" v="$3" out ms seconds events expected="" check=ok
    local pidfile="$BENCH_TMP/wide.pid" peakfile="$BENCH_TMP/wide.peak" sampler anon hwm
    fresh_db "$v"
    rm -f "$pidfile" "$peakfile"
    (
        while [ ! -s "$pidfile" ]; do sleep 0.01; done
        pid="$(tr -dc 0-9 <"$pidfile")"
        peak=0 hwm=0
        while [ -r "/proc/$pid/status" ]; do
            read -r cur now_hwm < <(awk '/^RssAnon:/ {a = $2} /^VmHWM:/ {h = $2} END {print a + 0, h + 0}' \
                "/proc/$pid/status" 2>/dev/null || echo "0 0")
            [ "${cur:-0}" -gt "$peak" ] && peak="$cur"
            [ "${now_hwm:-0}" -gt "$hwm" ] && hwm="$now_hwm"
            sleep 0.02
        done
        echo "$peak $hwm" >"$peakfile"
    ) &
    sampler=$!
    out="$(bpsql -d "run_$v" -v pidfile="$pidfile" <<SQL
\pset tuples_only on
\pset format unaligned
\o :pidfile
SELECT pg_backend_pid();
\o
SELECT pg_sleep(0.1);
\timing on
$(bulk_sql "$w");
SQL
)"
    wait "$sampler"
    ms="$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -n 1)"
    [ -n "$ms" ] || die "could not read psql's timing: $out"
    seconds="$(awk -v ms="$ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
    read -r anon hwm <"$peakfile"
    events="$(count_events "$v")"
    if [ -n "$events" ]; then
        expected=1000
        [ "$events" = "$expected" ] || check="events!=expected"
    fi
    drop_db "$v"
    echo "$round,$w,$v,seconds,$seconds,1,$events,$expected,$check" >>"$RAW"
    echo "$round,$w,$v,peak_anon_mb,$(awk -v k="$anon" 'BEGIN { printf "%.1f", k / 1024 }'),1,$events,$expected,$check" >>"$RAW"
    echo "$round,$w,$v,vmhwm_mb,$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }'),1,$events,$expected,$check" >>"$RAW"
    log "round $round  $w  $v: $seconds s, backend peak RssAnon $((anon / 1024)) MB, VmHWM $((hwm / 1024)) MB${events:+ ($events events)} $check"
}

# --- Rounds ----------------------------------------------------------------------------------

# Round r runs every workload on every variant; the variants' order rotates from round to
# round so that none is always first (or last) after a given other.
for round in $(seq 1 "$BENCH_ROUNDS"); do
    order=()
    for i in "${!VARIANTS[@]}"; do
        order+=("${VARIANTS[$(((i + round - 1) % ${#VARIANTS[@]}))]}")
    done
    for w in "${WORKLOADS[@]}"; do
        for v in "${order[@]}"; do
            case "$w" in
            insert | update | delete) run_pgbench "$round" "$w" "$v" ;;
            bulk_update | bulk_insert | bulk_touch) run_bulk "$round" "$w" "$v" ;;
            wide_update) run_wide "$round" "$w" "$v" ;;
            *) die "unknown workload $w" ;;
            esac
        done
    done
done

# --- Report ----------------------------------------------------------------------------------

MACHINE="$(machine_json)"
ELAPSED=$(($(date +%s) - STARTED))
cp "$RAW" "$RESULTS/capture-$DATE.csv"
python3 "$HERE/report.py" capture --raw "$RAW" --machine "$MACHINE" \
    --param seconds="$BENCH_SECONDS" --param rounds="$BENCH_ROUNDS" --param rows="$BENCH_ROWS" \
    --param clients="$BENCH_CLIENTS" --param query_mode="$BENCH_QUERY_MODE" --param elapsed="$ELAPSED" \
    --md "$RESULTS/capture-$DATE.md" --json "$RESULTS/capture-$DATE.json"
log "wrote bench/results/capture-$DATE.md, .json and .csv (${ELAPSED}s)"
