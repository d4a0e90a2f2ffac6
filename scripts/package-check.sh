#!/usr/bin/env bash
# Installs dist/'s packages the way a DBA would, on a machine that has never seen Rust:
# a fresh minimal Debian chroot (debootstrap), `apt-get install ./*.deb` pulling
# postgresql-<major>, then CREATE EXTENSION in a new cluster that captures a change, the
# command's --version and a real export, the units checked by systemd-analyze, the packages
# checked by lintian, and `dpkg -r` leaving none of their files behind.
#
#   scripts/package-check.sh SUITE MAJOR     e.g. bookworm 15 (Debian 12), trixie 17 (Debian 13)
#
# Needs root (chroot, mounts). A pristine chroot per suite is kept under
# /var/cache/audit-trail/chroots (made once, a few minutes) and copied for every run, so each
# run starts from a system no earlier run touched.
set -euo pipefail

SUITE="${1:?usage: package-check.sh SUITE MAJOR}"
MAJOR="${2:?usage: package-check.sh SUITE MAJOR}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE=/var/cache/audit-trail/chroots
EXT_DEB="$ROOT/dist/postgresql-${MAJOR}-audit-trail_${VERSION}_amd64.deb"
CLI_DEB="$ROOT/dist/audit-trail_${VERSION}_amd64.deb"

log() { printf 'package-check %s/%s: %s\n' "$SUITE" "$MAJOR" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (chroot and mounts)"
for deb in "$EXT_DEB" "$CLI_DEB"; do
    [ -f "$deb" ] || die "$deb is missing (make package)"
done
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v lintian >/dev/null || need+=(lintian)
if [ "${#need[@]}" -gt 0 ]; then
    log "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# With systemd, as on a server: the units are verified against its own unit files.
pristine="$CACHE/$SUITE-systemd"
if [ ! -f "$pristine/.complete" ]; then
    log "debootstrap --variant=minbase --include=systemd $SUITE (once; kept in $pristine)"
    rm -rf "$pristine"
    mkdir -p "$CACHE"
    debootstrap --variant=minbase --include=systemd "$SUITE" "$pristine" "$MIRROR" >/dev/null
    touch "$pristine/.complete"
fi

WORK="$(mktemp -d /var/tmp/audit-trail-package-check.XXXXXX)"
CH="$WORK/root"
cleanup() {
    local rc=$?
    for m in "$CH/proc" "$CH/dev/pts" "$CH/dev"; do
        mountpoint -q "$m" && umount -l "$m"
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
cp -a "$pristine" "$CH"
mount --bind /dev "$CH/dev"
mount -t devpts devpts "$CH/dev/pts" 2>/dev/null || true
mount -t proc proc "$CH/proc"
cp /etc/resolv.conf "$CH/etc/resolv.conf"
# No daemon starts in a chroot (Debian's policy-rc.d convention): the test starts its own.
printf '#!/bin/sh\nexit 101\n' >"$CH/usr/sbin/policy-rc.d"
chmod 755 "$CH/usr/sbin/policy-rc.d"
in_chroot() { chroot "$CH" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

# Nothing to build with: the point is that none is needed.
for tool in cargo rustc gcc cc; do
    if in_chroot sh -c "command -v $tool" >/dev/null; then die "the chroot has $tool"; fi
done

mkdir -p "$CH/tmp/dist"
cp "$EXT_DEB" "$CLI_DEB" "$CH/tmp/dist/"
log "apt-get install ./$(basename "$EXT_DEB") ./$(basename "$CLI_DEB")"
in_chroot apt-get update -qq
in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "/tmp/dist/$(basename "$EXT_DEB")" "/tmp/dist/$(basename "$CLI_DEB")" >"$WORK/apt.log" 2>&1 ||
    { cat "$WORK/apt.log" >&2; die "apt-get install failed"; }
in_chroot dpkg-query -W -f='${Status}\n' "postgresql-$MAJOR" | grep -q 'install ok installed' ||
    die "postgresql-$MAJOR was not pulled in"

log "audit-trail --version"
version="$(in_chroot audit-trail --version)"
[ "$version" = "audit-trail $VERSION" ] || die "audit-trail --version printed: $version"

# The configuration: root's to change, the services' group's to read.
perms="$(in_chroot stat -c '%U:%G %a' /etc/audit-trail/audit-trail.env)"
[ "$perms" = "root:audit-trail 640" ] || die "/etc/audit-trail/audit-trail.env is $perms"
in_chroot getent passwd audit-trail >/dev/null || die "no audit-trail user"

log "a new cluster: CREATE EXTENSION audit_trail, a tracked change, an export"
bin="/usr/lib/postgresql/$MAJOR/bin"
in_chroot install -d -o postgres -g postgres /tmp/pg
in_chroot runuser -u postgres -- "$bin/initdb" -D /tmp/pg/data -A trust >/dev/null
in_chroot runuser -u postgres -- "$bin/pg_ctl" -D /tmp/pg/data -l /tmp/pg/log -w \
    -o "-c listen_addresses='' -c unix_socket_directories=/tmp/pg -p 5499" start >/dev/null
stop_cluster() {
    in_chroot runuser -u postgres -- "$bin/pg_ctl" -D /tmp/pg/data -m fast -w stop >/dev/null 2>&1 || true
}
trap 'stop_cluster; cleanup' EXIT
psql() { in_chroot runuser -u postgres -- psql -h /tmp/pg -p 5499 -X -v ON_ERROR_STOP=1 -Atq "$@"; }
psql -d postgres -c "CREATE DATABASE app"
psql -d app -c "CREATE EXTENSION audit_trail" \
    -c "CREATE TABLE contacts (id int PRIMARY KEY, name text)" \
    -c "SELECT audit.track('contacts', 'contact')" \
    -c "INSERT INTO contacts VALUES (1, 'Ada')" \
    -c "UPDATE contacts SET name = 'Ada L.' WHERE id = 1"
shown="$(psql -d app -c "SELECT string_agg(action || ':' || (after ->> 'name'), ',' ORDER BY id)
                           FROM audit.report WHERE entity = 'contact'")"
[ "$shown" = "create:Ada,update:Ada L." ] || die "audit.report shows: $shown"
installed="$(psql -d app -c "SELECT extversion FROM pg_extension WHERE extname = 'audit_trail'")"
[ "$installed" = "$VERSION" ] || die "installed extension version: $installed"
in_chroot runuser -u postgres -- audit-trail export --db "host=/tmp/pg port=5499 dbname=app" \
    --entity contact --output /tmp/pg/contacts.csv
rows="$(in_chroot sh -c 'tail -n +2 /tmp/pg/contacts.csv | wc -l')"
[ "$rows" = 2 ] || die "the export holds $rows rows, not 2"

log "the timers' commands as the audit-trail user, configured by /etc/audit-trail/audit-trail.env"
psql -d app -c 'CREATE ROLE "audit-trail" LOGIN IN ROLE audit_service'
sed -i 's|^DATABASE_URL=.*|DATABASE_URL=postgresql:///app?host=/tmp/pg\&port=5499\&user=audit-trail|' \
    "$CH/etc/audit-trail/audit-trail.env"
in_chroot audit-trail keygen --output /etc/audit-trail/seal.key 2>"$WORK/keygen.out"
in_chroot chown root:audit-trail /etc/audit-trail/seal.key
in_chroot chmod 640 /etc/audit-trail/seal.key
register="$(grep -o "SELECT audit.register_seal_key([^;]*)" "$WORK/keygen.out")" ||
    die "keygen printed no registration statement"
psql -d app -c "$register" >/dev/null
# What systemd does with the unit: the environment file's variables, then ExecStart as the
# unit's user (EnvironmentFile lines are KEY=value, no shell quoting).
as_service() {
    local vars=()
    while IFS= read -r line; do
        case "$line" in '' | '#'*) ;; *) vars+=("$line") ;; esac
    done <"$CH/etc/audit-trail/audit-trail.env"
    chroot "$CH" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        runuser -u audit-trail -- /usr/bin/env "${vars[@]}" "$@"
}
in_chroot install -d -o audit-trail -g audit-trail -m 750 /var/lib/audit-trail/checkpoints
as_service sh -c 'audit-trail maintain $AUDIT_TRAIL_MAINTAIN_ARGS' >/dev/null ||
    die "audit-trail maintain failed as the audit-trail user"
as_service sh -c 'audit-trail seal --once --key "$AUDIT_TRAIL_SEAL_KEY" --checkpoints /var/lib/audit-trail/checkpoints' ||
    die "audit-trail seal failed as the audit-trail user"
sealed="$(psql -d app -c "SELECT unsealed_events FROM audit.integrity")"
[ "$sealed" = 0 ] || die "after seal, audit.integrity says $sealed events are unsealed"

log "systemd-analyze verify (the units as installed)"
units=()
for unit in "$CH"/lib/systemd/system/audit-trail-*; do
    case "$unit" in *@.service) units+=("$(dirname "$unit")/audit-trail-follow@crm.service") ;;
                    *) units+=("$unit") ;; esac
done
(cd "$CH/lib/systemd/system" && ln -sf audit-trail-follow@.service audit-trail-follow@crm.service)
systemd-analyze verify --root="$CH" "${units[@]#"$CH"}" >"$WORK/verify.log" 2>&1 ||
    { cat "$WORK/verify.log" >&2; die "systemd-analyze verify failed"; }
rm "$CH/lib/systemd/system/audit-trail-follow@crm.service"

log "lintian"
runuser -u nobody -- lintian --fail-on error "$EXT_DEB" "$CLI_DEB" >"$WORK/lintian.log" 2>&1 ||
    { cat "$WORK/lintian.log" >&2; die "lintian reports errors"; }

log "dpkg -r: every file of both packages goes (but the configuration, until purge)"
stop_cluster
files="$WORK/files"
in_chroot dpkg -L "postgresql-$MAJOR-audit-trail" audit-trail >"$files"
in_chroot dpkg -r "postgresql-$MAJOR-audit-trail" audit-trail >"$WORK/remove.log" 2>&1 ||
    { cat "$WORK/remove.log" >&2; die "dpkg -r failed"; }
left=()
while IFS= read -r f; do
    [ -f "$CH$f" ] && [ "$f" != /etc/audit-trail/audit-trail.env ] && left+=("$f")
done <"$files"
[ "${#left[@]}" -eq 0 ] || die "left after dpkg -r: ${left[*]}"
in_chroot dpkg --purge audit-trail >>"$WORK/remove.log" 2>&1 || { cat "$WORK/remove.log" >&2; die "dpkg --purge failed"; }
[ ! -e "$CH/etc/audit-trail/audit-trail.env" ] || die "the configuration left after purge"
# What the admin made there (the sealing key) is theirs: purge does not destroy a secret.
[ -f "$CH/etc/audit-trail/seal.key" ] || die "purge removed the admin's sealing key"
log "ok: installed, captured, exported, verified, linted and removed"
