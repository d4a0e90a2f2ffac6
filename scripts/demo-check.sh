#!/usr/bin/env bash
# `make demo-check`: runs the demo from a copy of this working tree in a fresh directory only
# its owner can enter (mktemp -d, mode 700; as root, the postgres user cannot reach it, as
# with a clone under /root), on free ports, twice (it must be safe to run again), and checks
# what a newcomer gets: the report, the CSV, the password file, the dashboard signing the demo
# admin in over TCP and showing the events, then that `demo.sh stop` stops it all. The copy
# and its cluster are removed at the end, pass or fail.
#
# Uses the installed extension and an already built binary (AUDIT_DEMO_BIN, by default
# target/debug/audit-trail, which `make build` makes) so that it costs seconds, not a build.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export AUDIT_DEMO_BIN="${AUDIT_DEMO_BIN:-$ROOT/target/debug/audit-trail}"
export AUDIT_DEMO_PAUSE="${AUDIT_DEMO_PAUSE:-0.05}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
BINDIR="$("$PG_CONFIG" --bindir)"

fail() {
    echo "demo-check: FAIL: $*" >&2
    exit 1
}

[ -x "$AUDIT_DEMO_BIN" ] || fail "no $AUDIT_DEMO_BIN (cargo build -p audit-trail)"

# A port nothing listens on (a random one, probed).
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    fail "no free port"
}
export AUDIT_DEMO_PORT="${AUDIT_DEMO_CHECK_PORT:-$(free_port)}"
export AUDIT_DEMO_HTTP_PORT="${AUDIT_DEMO_CHECK_HTTP_PORT:-$(free_port)}"
URL="http://127.0.0.1:$AUDIT_DEMO_HTTP_PORT"

TOP="$(mktemp -d)"
chmod 700 "$TOP"
CLONE="$TOP/my clone"
cleanup() {
    [ -x "$CLONE/scripts/demo.sh" ] && "$CLONE/scripts/demo.sh" clean >/dev/null 2>&1 || true
    rm -rf "$TOP"
}
trap cleanup EXIT

# The working tree as git sees it (tracked and new files, nothing ignored), so that what is
# checked is what would be committed.
mkdir "$CLONE"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
    (cd "$ROOT" && xargs -0 tar -cf - --no-recursion --ignore-failed-read 2>/dev/null) |
    tar -xf - -C "$CLONE"
[ -x "$CLONE/scripts/demo.sh" ] || fail "the copy has no scripts/demo.sh"

if [ "$(id -u)" -eq 0 ]; then
    ! runuser -u postgres -- test -x "$CLONE" ||
        fail "postgres can enter $CLONE: this would not check the private-clone case"
fi

check_run() {
    local n="$1" out="$TOP/run$1.log"
    echo "demo-check: run $n of the demo in $CLONE (ports $AUDIT_DEMO_PORT, $AUDIT_DEMO_HTTP_PORT)"
    "$CLONE/scripts/demo.sh" >"$out" 2>&1 || {
        cat "$out" >&2
        fail "run $n: demo.sh failed"
    }
    for heading in '== Contact changes' '== Exports ==' '== Export ==' \
        '== Tamper evidence and upkeep ==' '== Dashboard =='; do
        grep -q -- "$heading" "$out" || {
            cat "$out" >&2
            fail "run $n: no '$heading' in the demo's output"
        }
    done
    grep -q "$URL" "$out" || fail "run $n: the URL $URL is not printed"

    local csv="$CLONE/audit-report.csv"
    [ -s "$csv" ] || fail "run $n: no audit-report.csv"
    head -1 "$csv" | grep -q 'occurred_at' || fail "run $n: the CSV has no header"
    local rows moments
    rows=$(($(wc -l <"$csv") - 1))
    [ "$rows" -gt 500 ] || fail "run $n: the CSV has $rows rows"
    # The scripted transactions happen at distinct moments.
    moments=$("$BINDIR/psql" -X -At -h "$(cat "$CLONE/.demo/run-dir")" \
        -p "$AUDIT_DEMO_PORT" -U postgres -d audit_demo \
        -c "SELECT count(DISTINCT occurred_at) FROM audit.report")
    [ "$moments" -ge 20 ] || fail "run $n: the events carry only $moments distinct times"

    local pw mode
    mode="$(stat -c %a "$CLONE/.demo/password")"
    [ "$mode" = 600 ] || fail "run $n: .demo/password has mode $mode"
    pw="$(cat "$CLONE/.demo/password")"
    grep -q -- "$pw" "$out" || fail "run $n: the password is not printed"
    git -C "$ROOT" check-ignore -q .demo/password || fail ".demo/ is not ignored by git"

    # Sign in as a person would: the form's cookie and CSRF token, then role and password.
    local jar="$TOP/cookies" form token status page
    rm -f "$jar"
    form="$(curl -fsS -c "$jar" "$URL/sign-in")" || fail "run $n: the dashboard does not answer"
    token="$(printf '%s' "$form" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)"
    [ -n "$token" ] || fail "run $n: no CSRF token on the sign-in page"
    status="$(curl -sS -o /dev/null -w '%{http_code}' -b "$jar" -c "$jar" \
        --data-urlencode "csrf=$token" --data-urlencode "role=auditor" \
        --data-urlencode "password=$pw" "$URL/sign-in")"
    [ "$status" = 303 ] || fail "run $n: sign-in as auditor answered $status, not 303"
    page="$(curl -fsS -b "$jar" "$URL/reports/audit-log")" || fail "run $n: no Audit Log page"
    printf '%s' "$page" | grep -q 'alice@example.com' ||
        fail "run $n: the Audit Log page does not show the demo's events"
    # Sealed, verified, maintained: the page says so and warns of nothing.
    grep -q 'intact:' "$out" || fail "run $n: the demo's verify did not find the log intact"
    printf '%s' "$page" | grep -q 'Sealed through event' ||
        fail "run $n: the Audit Log page does not show the log sealed"
    if printf '%s' "$page" | grep -q -e 'Not sealed yet' -e 'Warning:' -e 'audit-trail maintain'; then
        fail "run $n: the Audit Log page shows a warning"
    fi
    # The printed embed link opens globex's admin a session that shows globex's events only,
    # and the printed API line answers with them.
    local embed api_token embed_jar api
    embed="$(grep -o "$URL/embed?token=[A-Za-z0-9._-]*" "$out" | head -1)"
    [ -n "$embed" ] || fail "run $n: no embed link printed"
    embed_jar="$TOP/embed-cookies"
    rm -f "$embed_jar"
    page="$(curl -fsS -L -b "$embed_jar" -c "$embed_jar" "$embed")" ||
        fail "run $n: the embed link does not open"
    printf '%s' "$page" | grep -q 'gina@globex.example' ||
        fail "run $n: the embedded Audit Log does not show globex's events"
    if printf '%s' "$page" | grep -q -e 'alice@example.com' -e 'carol@example.com'; then
        fail "run $n: the embedded Audit Log shows another organization's events"
    fi
    api_token="${embed##*token=}"
    api="$(curl -fsS -H "Authorization: Bearer $api_token" "$URL/api/v1/events?limit=5")" ||
        fail "run $n: the API does not answer the printed token"
    printf '%s' "$api" | grep -q '"tenant":"globex"' ||
        fail "run $n: the API's events are not globex's: $api"
    grep -q "curl -H 'Authorization: Bearer $api_token'" "$out" ||
        fail "run $n: no curl line for the API printed"
    echo "demo-check: run $n ok ($rows events in the CSV, $moments distinct times, signed in, embedded)"
}

check_run 1
check_run 2

"$CLONE/scripts/demo.sh" stop >/dev/null
if curl -fsS -o /dev/null "$URL/sign-in" 2>/dev/null; then
    fail "the dashboard still answers after demo.sh stop"
fi
if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$AUDIT_DEMO_PORT"; then
    fail "the demo cluster still runs after demo.sh stop"
fi
echo "demo-check: ok (demo.sh stop stopped the dashboard and the cluster)"
