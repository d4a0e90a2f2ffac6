#!/usr/bin/env bash
# `make demo`: a PostgreSQL cluster of this clone's own (port 5499 unless AUDIT_DEMO_PORT is
# set), the sample CRM of demo/, a day of activity by several users, a report in the
# terminal, a CSV export, and the dashboard (`audit-trail serve`) left running on
# http://127.0.0.1:8080 (AUDIT_DEMO_HTTP_PORT) with a demo admin's role and password.
# Safe to run again: the demo database is recreated, the dashboard restarted.
#
#   scripts/demo.sh [run]   set up (or refresh) and start everything
#   scripts/demo.sh stop    stop the dashboard and the cluster
#   scripts/demo.sh clean   stop, then delete the cluster and .demo/
#
# Where things live. As root the server runs as `postgres` (runuser), which cannot enter a
# clone under /root (mode 700) or any other private directory. So the cluster's data
# directory, unix socket and server log live in a directory of their own under /var/tmp,
# named after the clone (AUDIT_DEMO_RUN overrides), created mode 0700 and owned by the user
# that runs the server; the script refuses a directory there that it did not make (a link,
# another owner, a wider mode). `.demo/` in the clone holds only what the invoking user
# needs: `run-dir` (the pointer to that directory), `password` (the demo admin's, mode 0600,
# generated once), the dashboard's pid file and log, and `server.log`, a link to the
# server's log.
#
# Other knobs: AUDIT_DEMO_BIN (the audit-trail binary; target/release/audit-trail),
# AUDIT_DEMO_PAUSE (seconds between the scripted transactions; 1).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEMO="$ROOT/.demo"
PORT="${AUDIT_DEMO_PORT:-5499}"
HTTP_PORT="${AUDIT_DEMO_HTTP_PORT:-8080}"
PAUSE="${AUDIT_DEMO_PAUSE:-1}"
BIN="${AUDIT_DEMO_BIN:-$ROOT/target/release/audit-trail}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
BINDIR="$("$PG_CONFIG" --bindir)"
DB=audit_demo
ADMIN=auditor
URL="http://127.0.0.1:$HTTP_PORT"
# Quiet NOTICEs (an existing grant on a second run, ...): the demo prints its own report.
export PGOPTIONS="-c client_min_messages=warning"

# The run directory: one per clone, named after its directory and a hash of its path, short
# enough for a unix socket path.
run_dir() {
    if [ -n "${AUDIT_DEMO_RUN:-}" ]; then
        echo "$AUDIT_DEMO_RUN"
        return
    fi
    local name hash
    name="$(basename "$ROOT")"
    name="${name//[^A-Za-z0-9_.-]/_}"
    name="${name:0:24}"
    hash="$(printf '%s' "$ROOT" | sha256sum | cut -c1-10)"
    echo "/var/tmp/audit-trail-demo-$name-$hash"
}
RUN="$(run_dir)"
DATA="$RUN/data"
PIDFILE="$DEMO/dashboard.pid"

as_root() { [ "$(id -u)" -eq 0 ]; }

as_postgres() {
    # From /: postgres may not be able to enter the current directory.
    if as_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

die() {
    echo "demo: $*" >&2
    exit 1
}

# Makes (or checks) the run directory: a real directory, owned by the server's user, 0700.
make_run_dir() {
    local owner
    owner="$(as_root && echo postgres || id -un)"
    if [ ! -e "$RUN" ] && [ ! -L "$RUN" ]; then
        if as_root; then
            install -d -m 0700 -o postgres -g postgres "$RUN"
        else
            (umask 077 && mkdir "$RUN")
        fi
    fi
    [ -d "$RUN" ] && [ ! -L "$RUN" ] || die "$RUN is not a directory; remove it"
    [ "$(stat -c '%U %a' "$RUN")" = "$owner 700" ] ||
        die "$RUN must be owned by $owner with mode 700 (it is $(stat -c '%U %a' "$RUN")); remove it"
}

running() {
    [ -f "$DATA/postmaster.pid" ] && as_postgres "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# The pid in the pid file, if that process is still our dashboard.
dashboard_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid="$(cat "$PIDFILE")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'audit-trail serve' && echo "$pid"
}

stop_dashboard() {
    local pid
    if pid="$(dashboard_pid)"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        echo "dashboard stopped"
    fi
    rm -f "$PIDFILE"
}

stop() {
    stop_dashboard
    if running; then
        as_postgres "$BINDIR/pg_ctl" -D "$DATA" stop -m fast >/dev/null
        echo "demo cluster stopped"
    fi
    # A cluster left in .demo/data by an earlier version of this script.
    if [ -f "$DEMO/data/postmaster.pid" ]; then
        as_postgres "$BINDIR/pg_ctl" -D "$DEMO/data" stop -m fast >/dev/null 2>&1 || true
    fi
}

start() {
    mkdir -p "$DEMO"
    chmod 0700 "$DEMO"
    make_run_dir
    printf '%s\n' "$RUN" >"$DEMO/run-dir"
    ln -sfn "$RUN/server.log" "$DEMO/server.log"
    if [ -f "$DEMO/data/postmaster.pid" ]; then
        # The old in-clone cluster would hold the port.
        as_postgres "$BINDIR/pg_ctl" -D "$DEMO/data" stop -m fast >/dev/null 2>&1 || true
    fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
        as_postgres "$BINDIR/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C >/dev/null
        as_postgres tee -a "$DATA/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$RUN'
password_encryption = 'scram-sha-256'
CONF
        # The scripts come in over the socket as they are; the dashboard over TCP with a
        # password, which is what it requires.
        printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' |
            as_postgres tee "$DATA/pg_hba.conf" >/dev/null
    fi
    if ! running; then
        as_postgres "$BINDIR/pg_ctl" -D "$DATA" -l "$RUN/server.log" -o "-p $PORT" -w start >/dev/null ||
            die "the cluster did not start; see $RUN/server.log"
    fi
    echo "demo cluster running: host=$RUN port=$PORT (log: .demo/server.log)"
}

# The demo admin's password: generated once, kept in .demo/password (0600).
password() {
    if [ ! -s "$DEMO/password" ]; then
        (
            umask 077
            if command -v openssl >/dev/null; then
                openssl rand -base64 24
            else
                head -c 24 /dev/urandom | base64
            fi | tr -d '/+=\n' | cut -c1-24 >"$DEMO/password.tmp"
            mv "$DEMO/password.tmp" "$DEMO/password"
        )
    fi
    chmod 0600 "$DEMO/password"
    cat "$DEMO/password"
}

# The secret the demo's application signs viewer tokens with: generated once, kept in
# .demo/viewer.secret (0600), 64 characters, no newline.
viewer_secret() {
    if [ ! -s "$DEMO/viewer.secret" ]; then
        (
            umask 077
            head -c 48 /dev/urandom | base64 | tr -d '\n' >"$DEMO/viewer.secret.tmp"
            mv "$DEMO/viewer.secret.tmp" "$DEMO/viewer.secret"
        )
    fi
    chmod 0600 "$DEMO/viewer.secret"
}

# A viewer token (HS256 JWT) for an admin of organization $1 named $2, valid for an hour,
# minted as the application's backend would: with the standard library only, the secret
# read from its file (never on a command line).
mint_token() {
    python3 - "$DEMO/viewer.secret" "$1" "$2" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret = open(sys.argv[1], "rb").read().rstrip(b"\n")
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
claims = {"sub": sys.argv[3], "name": sys.argv[3], "tenant": sys.argv[2], "iat": now,
          "exp": now + 3600, "scope": "audit_log:read audit_log:export"}
signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + \
    b64(json.dumps(claims).encode())
print(signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest()))
PY
}

psql_demo() {
    "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$PORT" -U postgres "$@"
}

# Whether the dashboard answers its sign-in page (bash's /dev/tcp: no curl needed).
answers() {
    local status
    status="$(
        exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT" || exit 1
        printf 'GET /sign-in HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$HTTP_PORT" >&3
        head -1 <&3
    )" 2>/dev/null || return 1
    [[ "$status" == "HTTP/1."?" 200"* ]]
}

start_dashboard() {
    [ -x "$BIN" ] || die "no $BIN: run cargo build --release -p audit-trail (make demo does)"
    stop_dashboard
    : >"$DEMO/dashboard.log"
    # Its own session, output to a file: it outlives this script and holds no terminal.
    # DBAs sign in with their role; the application's admins come with a token, read
    # through audit_viewers (a role in audit_admin) and see their organization only.
    setsid "$BIN" serve --db "host=127.0.0.1 port=$PORT dbname=$DB connect_timeout=10" \
        --listen "127.0.0.1:$HTTP_PORT" \
        --viewer-secret-file "$DEMO/viewer.secret" \
        --viewer-db "host=$RUN port=$PORT user=audit_viewers dbname=$DB" \
        </dev/null >>"$DEMO/dashboard.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 100); do
        # Alive, not "named audit-trail serve": /proc/PID/cmdline reads empty for an
        # instant while setsid execs the server, which made a starting dashboard look dead.
        if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
            cat "$DEMO/dashboard.log" >&2
            rm -f "$PIDFILE"
            die "the dashboard did not start (is port $HTTP_PORT taken? AUDIT_DEMO_HTTP_PORT picks another)"
        fi
        if answers; then
            return
        fi
        sleep 0.1
    done
    die "the dashboard does not answer on $URL; see .demo/dashboard.log"
}

case "${1:-run}" in
stop)
    stop
    exit 0
    ;;
clean)
    stop
    if [ -d "$RUN" ] && [ ! -L "$RUN" ]; then rm -rf "$RUN"; fi
    rm -rf "$DEMO"
    exit 0
    ;;
run) ;;
*)
    echo "usage: $0 [run|stop|clean]" >&2
    exit 2
    ;;
esac

start
stop_dashboard
PASSWORD="$(password)"
psql_demo -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
# An auditor who may read the log (and nothing else): what a DBA would set up. Its password
# is for the dashboard, which signs in over TCP (scram-sha-256); the scripts use the socket.
psql_demo -d postgres -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ADMIN') THEN
        CREATE ROLE $ADMIN LOGIN;
    END IF;
END \$\$"
# Through stdin, so the password is never on a command line.
printf '%s\n' "ALTER ROLE $ADMIN PASSWORD :'pw';" | psql_demo -d postgres -v pw="$PASSWORD"
psql_demo -d "$DB" -f "$ROOT/demo/schema.sql"
psql_demo -d "$DB" -c "GRANT audit_admin TO $ADMIN"
echo "replaying a day of CRM activity (28 transactions, ${PAUSE} s apart)..."
psql_demo -d "$DB" -c "SET demo.pause = '$PAUSE'" -f "$ROOT/demo/activity.sql"

export PGHOST="$RUN" PGPORT="$PORT"
"$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -U "$ADMIN" -d "$DB" -f "$ROOT/demo/report.sql"

echo "== Alerts =="
# The built-in rules over the day's activity (docs/alerts.md): each alert is recorded in the
# log, and shows on the dashboard as an event of the audit log itself.
"$BIN" alert --once --consumer demo --db "host=$RUN port=$PORT user=$ADMIN dbname=$DB" \
    --stdout >"$DEMO/alerts.jsonl"
"$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -U "$ADMIN" -d "$DB" \
    -c "SELECT '   ' || summary FROM audit.report WHERE action = 'alert' ORDER BY id"
echo "   (ran: audit-trail alert --once --consumer demo --stdout; alerts also in .demo/alerts.jsonl)"

CSV="$ROOT/audit-report.csv"
echo "== Export =="
"$BIN" export --db "host=$RUN port=$PORT user=$ADMIN dbname=$DB" --since 1d --output "$CSV"
echo "   (ran: audit-trail export --db 'host=$RUN port=$PORT user=$ADMIN dbname=$DB' --since 1d --output audit-report.csv;"
echo "    the export itself is now recorded in audit.export_activity)"

echo "== Tamper evidence and upkeep =="
# As production runs it: a sealing key kept outside the database (registered by a superuser),
# a sealer in audit_service, maintenance, and a verification against the public key and the
# checkpoints only. The database is new on every run, so the checkpoints are too.
KEY="$DEMO/seal.key"
[ -f "$KEY" ] || "$BIN" keygen --output "$KEY" 2>/dev/null
CHECKPOINTS="$DEMO/checkpoints"
rm -rf "$CHECKPOINTS"
mkdir -p "$CHECKPOINTS"
psql_demo -d "$DB" -c "SELECT audit.register_seal_key('\\x$(sed -n 2p "$KEY.pub")')" >/dev/null
psql_demo -d postgres -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'audit_sealer') THEN
        CREATE ROLE audit_sealer LOGIN IN ROLE audit_admin, audit_service;
    END IF;
END \$\$"
"$BIN" maintain --db "host=$RUN port=$PORT user=$ADMIN dbname=$DB" >/dev/null
"$BIN" seal --once --key "$KEY" --checkpoints "$CHECKPOINTS" \
    --db "host=$RUN port=$PORT user=audit_sealer dbname=$DB" 2>/dev/null
VERIFIED="$("$BIN" verify --pubkey "$KEY.pub" --checkpoints "$CHECKPOINTS" \
    --db "host=$RUN port=$PORT user=$ADMIN dbname=$DB" 2>&1)"
echo "   $VERIFIED"
echo "   (ran: audit-trail keygen, maintain, seal --once, verify --pubkey .demo/seal.key.pub"
echo "    --checkpoints .demo/checkpoints; in production: timers, see the README)"

psql_demo -d postgres -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'audit_viewers') THEN
        CREATE ROLE audit_viewers LOGIN IN ROLE audit_admin;
    END IF;
END \$\$"
viewer_secret
start_dashboard
echo "$URL" >"$DEMO/dashboard.url"
TOKEN="$(mint_token globex gina@globex.example)"
echo
echo "== Dashboard =="
echo "   $URL   sign in as role: $ADMIN   password: $PASSWORD"
echo
echo "   Globex's admin, as the application would embed it (globex's events only; valid 1 hour):"
echo "   $URL/embed?token=$TOKEN"
echo "   The same through the JSON API:"
echo "   curl -H 'Authorization: Bearer $TOKEN' '$URL/api/v1/events?limit=5'"
echo "   (tokens minted with .demo/viewer.secret, as your backend would: see the README,"
echo "    \"Embedding the Audit Log in your application\")"
echo "   (password kept in .demo/password; log: .demo/dashboard.log; make demo-stop stops it all)"
