#!/usr/bin/env bash
# Takes docs/audit-log.png, the README's picture of the Audit Log page, from the running demo
# (`make demo` first): headless Chromium, driven over WebDriver by chromedriver (plain HTTP
# with curl and jq), signs in as the demo admin and photographs the page, 1280x1000 pixels
# (SCREENSHOT_WIDTH, SCREENSHOT_HEIGHT).
#
#   scripts/demo-screenshot.sh [OUTPUT.png]
#
# Needs chromium, chromium-driver (make setup installs them), curl and jq. CHROMIUM and
# CHROMEDRIVER override the binaries, as in the browser tests.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEMO="$ROOT/.demo"
OUT="${1:-$ROOT/docs/audit-log.png}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"

die() {
    echo "demo-screenshot: $*" >&2
    exit 1
}
for tool in curl jq base64 "$CHROMEDRIVER"; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
[ -s "$DEMO/dashboard.url" ] && [ -s "$DEMO/password" ] || die "no demo running: make demo"
URL="$(cat "$DEMO/dashboard.url")"
PASSWORD="$(cat "$DEMO/password")"
curl -fsS -o /dev/null "$URL/sign-in" || die "the dashboard does not answer on $URL: make demo"

PORT=$((20000 + RANDOM % 30000))
PROFILE="$(mktemp -d)"
setsid "$CHROMEDRIVER" --port="$PORT" </dev/null >/dev/null 2>&1 &
DRIVER=$!
SESSION=
cleanup() {
    if [ -n "$SESSION" ]; then
        curl -fsS -X DELETE "$WD/session/$SESSION" >/dev/null 2>&1 || true
    fi
    # chromedriver leads its own process group (setsid): Chromium goes down with it.
    kill -- "-$DRIVER" 2>/dev/null || kill "$DRIVER" 2>/dev/null || true
    rm -rf "$PROFILE"
}
trap cleanup EXIT
WD="http://127.0.0.1:$PORT"

# One WebDriver call: METHOD PATH [JSON]; prints the reply's "value".
wd() {
    local reply
    reply="$(curl -sS -X "$1" -H 'Content-Type: application/json' "$WD$2" ${3:+--data "$3"})"
    if [ "$(jq -r '.value | objects | .error // empty' <<<"$reply")" != "" ]; then
        die "$1 $2: $(jq -r '.value.message' <<<"$reply" | head -3)"
    fi
    jq -c '.value' <<<"$reply"
}
element() {
    local id
    id="$(wd POST "/session/$SESSION/element" "$(jq -nc --arg css "$1" '{using: "css selector", value: $css}')" |
        jq -r '.["element-6066-11e4-a52e-4f735466cecf"] // empty')"
    [ -n "$id" ] || die "no element $1 on $(wd GET "/session/$SESSION/url")"
    echo "$id"
}

for _ in $(seq 100); do
    curl -fsS -o /dev/null "$WD/status" 2>/dev/null && break
    sleep 0.1
done
CAPS="$(jq -nc --arg bin "$CHROMIUM" --arg profile "--user-data-dir=$PROFILE" '{capabilities: {alwaysMatch: {
    browserName: "chrome",
    "goog:chromeOptions": {binary: $bin, args: ["--headless", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars", "--lang=en-US",
        "--window-size=1280,800", "--force-device-scale-factor=1", $profile]}}}}')"
SESSION="$(wd POST /session "$CAPS" | jq -r '.sessionId')"

# Headless Chromium's window includes no visible chrome, but its viewport still comes out
# smaller than --window-size: size the window so that the viewport is WIDTHxHEIGHT.
WIDTH="${SCREENSHOT_WIDTH:-1280}" HEIGHT="${SCREENSHOT_HEIGHT:-1000}"
viewport="$(wd POST "/session/$SESSION/execute/sync" '{"script": "return [window.innerWidth, window.innerHeight]", "args": []}')"
wd POST "/session/$SESSION/window/rect" "$(jq -nc --argjson v "$viewport" --argjson w "$WIDTH" --argjson h "$HEIGHT" \
    '{width: (1280 + $w - $v[0]), height: (800 + $h - $v[1])}')" >/dev/null
wd POST "/session/$SESSION/url" "$(jq -nc --arg u "$URL/sign-in" '{url: $u}')" >/dev/null
role="$(element '#role')"
password="$(element '#password')"
submit="$(element 'form.stack button[type=submit]')"
wd POST "/session/$SESSION/element/$role/value" '{"text": "auditor"}' >/dev/null
wd POST "/session/$SESSION/element/$password/value" "$(jq -nc --arg p "$PASSWORD" '{text: $p}')" >/dev/null
wd POST "/session/$SESSION/element/$submit/click" '{}' >/dev/null
wd POST "/session/$SESSION/url" "$(jq -nc --arg u "$URL/reports/audit-log" '{url: $u}')" >/dev/null
table="$(element 'table')"
wd GET "/session/$SESSION/screenshot" | jq -r . | base64 -d >"$OUT"
echo "demo-screenshot: wrote $OUT ($(stat -c %s "$OUT") bytes)"
