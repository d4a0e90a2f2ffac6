# shellcheck shell=bash
# Sourced by the benchmark scripts: a throwaway PostgreSQL cluster of their own.
#
# cluster_start creates it in a fresh temporary directory (data and unix socket there, a free
# port, no TCP: listen_addresses = ''), with the benchmark settings below; cluster_stop (run
# by the EXIT/INT/TERM trap that cluster_start installs) stops it and removes the directory.
# As root, initdb, pg_ctl and postgres run as the postgres user through runuser.

PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
BINDIR="$("$PG_CONFIG" --bindir)"

# Benchmark settings (recorded in every result file).
BENCH_SHARED_BUFFERS="${BENCH_SHARED_BUFFERS:-1GB}"
BENCH_FSYNC="${BENCH_FSYNC:-on}"
# WAL kept between checkpoints: 16GB holds a whole measurement; bench/scale.sh at 100M events
# takes less (BENCH_MAX_WAL_SIZE=4GB) to leave the disk to the data.
BENCH_MAX_WAL_SIZE="${BENCH_MAX_WAL_SIZE:-16GB}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A TCP port nobody listens on (the server listens only on its unix socket, which lives in our
# own directory, but a distinct port keeps its socket name unique anyway).
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((40000 + RANDOM % 20000))
        if ! ss -Htan 2>/dev/null | awk '{print $4}' | grep -q ":${port}\$"; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

BENCH_TMP=""
BENCH_PORT=""

cluster_stop() {
    if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ]; then
        if [ -f "$BENCH_TMP/data/postmaster.pid" ]; then
            as_postgres "$BINDIR/pg_ctl" -D "$BENCH_TMP/data" stop -m fast -w >/dev/null 2>&1 ||
                as_postgres "$BINDIR/pg_ctl" -D "$BENCH_TMP/data" stop -m immediate -w >/dev/null 2>&1 ||
                true
        fi
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            log "kept $BENCH_TMP (BENCH_KEEP=1)"
        else
            rm -rf "$BENCH_TMP"
        fi
        BENCH_TMP=""
    fi
}

on_exit() {
    local rc=$?
    cluster_stop
    exit "$rc"
}

cluster_start() {
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    BENCH_TMP="$(mktemp -d /tmp/audit-trail-bench.XXXXXX)"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$BENCH_TMP"; fi
    BENCH_PORT="$(free_port)"
    as_postgres "$BINDIR/initdb" -D "$BENCH_TMP/data" -U postgres -A trust -E UTF8 \
        --locale=C >"$BENCH_TMP/initdb.log" 2>&1 || {
        cat "$BENCH_TMP/initdb.log" >&2
        die "initdb failed"
    }
    as_postgres tee -a "$BENCH_TMP/data/postgresql.conf" >/dev/null <<CONF
# audit_trail benchmark settings
port = $BENCH_PORT
listen_addresses = ''
unix_socket_directories = '$BENCH_TMP'
max_connections = 20
shared_buffers = $BENCH_SHARED_BUFFERS
synchronous_commit = off
fsync = $BENCH_FSYNC
# No checkpoint or autovacuum in the middle of a measurement: the scripts run CHECKPOINT and
# VACUUM themselves between measurements.
max_wal_size = $BENCH_MAX_WAL_SIZE
checkpoint_timeout = 1h
autovacuum = off
CONF
    as_postgres "$BINDIR/pg_ctl" -D "$BENCH_TMP/data" -l "$BENCH_TMP/server.log" -w -t 120 \
        start >/dev/null || {
        cat "$BENCH_TMP/server.log" >&2
        die "the benchmark cluster did not start"
    }
    export PGHOST="$BENCH_TMP" PGPORT="$BENCH_PORT" PGUSER=postgres
    unset PGDATABASE DATABASE_URL PGPASSWORD
    export PGOPTIONS="-c client_min_messages=warning"
    log "cluster running: host=$PGHOST port=$PGPORT (shared_buffers=$BENCH_SHARED_BUFFERS, synchronous_commit=off, fsync=$BENCH_FSYNC, max_wal_size=$BENCH_MAX_WAL_SIZE)"
}

# psql against the benchmark cluster; stops the script on the first error.
bpsql() { "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# One value from a query.
bval() {
    local db="$1"
    shift
    "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -At -d "$db" -c "$*"
}

# Host and server facts for the header of a result file, as JSON.
machine_json() {
    local cpu mem
    cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    mem="$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    python3 - "$cpu" "$mem" "$(nproc)" "$(bval postgres 'SELECT version()')" \
        "$(bval postgres "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers','synchronous_commit','fsync','full_page_writes','wal_level','autovacuum','max_wal_size','checkpoint_timeout','jit','work_mem','max_connections')")" \
        "$(git -C "$(dirname "${BASH_SOURCE[0]}")/.." describe --always --dirty 2>/dev/null || echo unknown)" <<'PY'
import json, sys
cpu, mem, nproc, version, settings, rev = sys.argv[1:]
print(json.dumps({"cpu": cpu, "memory": mem, "nproc": int(nproc), "postgres": version,
                  "settings": settings, "git": rev}))
PY
}

# Sets database $2 up as capture variant $1:
#   none                  no auditing
#   audit_trail           the extension, as README.md shows it
#   audit_trail_nonotify  the same with audit.notify = off (set per database by the caller)
#   audit_trail_tenant    the extension, the contacts tracked with a tenant_column
#   plpgsql               the reference PL/pgSQL row triggers of plpgsql_peer.sql
setup_variant() {
    local here
    here="$(dirname "${BASH_SOURCE[0]}")"
    case "$1" in
    none) ;;
    audit_trail | audit_trail_nonotify)
        bpsql -d "$2" -o /dev/null -c "CREATE EXTENSION audit_trail" \
            -c "SELECT audit.track('bench.contacts', 'contact', ignore_columns => '{updated_at}')" \
            -c "SELECT audit.track('bench.documents', 'document')"
        ;;
    audit_trail_tenant)
        # Each row names its organization (city stands in for an account column): every
        # event records it and its (tenant, occurred_at, id) index entry.
        bpsql -d "$2" -o /dev/null -c "CREATE EXTENSION audit_trail" \
            -c "SELECT audit.track('bench.contacts', 'contact', ignore_columns => '{updated_at}', tenant_column => 'city')" \
            -c "SELECT audit.track('bench.documents', 'document')"
        ;;
    plpgsql)
        bpsql -d "$2" -o /dev/null -f "$here/plpgsql_peer.sql" \
            -c "SELECT audit_peer.track('bench.contacts', 'contact', ignore_columns => '{updated_at}')" \
            -c "SELECT audit_peer.track('bench.documents', 'document')"
        ;;
    *) die "unknown variant $1" ;;
    esac
}

# The table a variant writes its events to.
events_table() {
    case "$1" in
    audit_trail | audit_trail_nonotify | audit_trail_tenant) echo audit.events ;;
    plpgsql) echo audit_peer.events ;;
    *) echo "" ;;
    esac
}

# The one statement of each bulk workload.
bulk_sql() {
    case "$1" in
    bulk_update) echo "UPDATE bench.contacts SET score = score + 1, updated_at = now()" ;;
    bulk_insert) echo "INSERT INTO bench.contacts
                       SELECT id + 1000000, first_name, last_name, 'copy.' || email, phone,
                              company, city, score, now(), now()
                         FROM bench.contacts" ;;
    bulk_touch) echo "UPDATE bench.contacts SET updated_at = now()" ;;
    wide_update) echo "UPDATE bench.documents SET views = views + 1" ;;
    esac
}
