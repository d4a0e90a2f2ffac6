#!/usr/bin/env bash
# Runs a command in a Debian 13 (trixie) chroot that has PostgreSQL 17 and its server
# headers, with this machine's Rust toolchain and cargo-pgrx and this clone mounted at the
# same paths: how PostgreSQL 17 is built and tested here (Debian 12 has no 17, and Debian 13's
# binaries do not run on Debian 12's older glibc, while the toolchain, built against the older
# one, runs on the newer).
#
#   scripts/debian13.sh [--with-extension] COMMAND...    e.g. scripts/debian13.sh pg_config --version
#
# --with-extension first builds and installs the extension into the chroot's PostgreSQL 17, as
# `make install` does on the host (with the frozen scripts of earlier versions, and a check
# that the committed install script is what the build generated). BENCH_* and UPDATE_GOLDEN
# are passed on to the command; nothing else of the caller's environment is.
#
# Root (chroot, mounts). The chroot is made once (debootstrap, about a minute) under
# /var/cache/audit-trail/chroots/trixie-build and kept; builds go to target/debian13 (its own
# CARGO_TARGET_DIR: the build scripts in target/ were linked on Debian 12, and those built
# there must not be run here).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CH=/var/cache/audit-trail/chroots/trixie-build
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TARGET="$ROOT/target/debian13"
# To build the extension; then what the end-to-end tests run besides PostgreSQL: the browser
# tests' Chromium, openssl for the TLS test's certificates, and Python for the tools' venv.
PACKAGES=(postgresql-17 postgresql-server-dev-17 libclang-dev clang gcc libc6-dev make
          pkg-config ca-certificates chromium chromium-driver openssl python3-venv)

log() { printf 'debian13: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (chroot and mounts)"
with_extension=0
if [ "${1:-}" = --with-extension ]; then with_extension=1; shift; fi
[ "$#" -gt 0 ] || die "usage: debian13.sh [--with-extension] COMMAND..."
passed=()
for var in $(compgen -e); do
    case "$var" in BENCH_* | UPDATE_GOLDEN) passed+=("$var=${!var}") ;; esac
done
command -v debootstrap >/dev/null || {
    log "apt-get install debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
}

apt_in_chroot() {
    chroot "$CH" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $*" >/dev/null
}
if [ ! -f "$CH/.complete" ]; then
    log "debootstrap --variant=minbase trixie $CH (once)"
    rm -rf "$CH"
    mkdir -p "$(dirname "$CH")"
    debootstrap --variant=minbase trixie "$CH" "$MIRROR" >/dev/null
    cp /etc/resolv.conf "$CH/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$CH/usr/sbin/policy-rc.d"
    chmod 755 "$CH/usr/sbin/policy-rc.d"
    apt_in_chroot "${PACKAGES[*]}"
    printf '%s\n' "${PACKAGES[*]}" >"$CH/.complete"
elif [ "$(cat "$CH/.complete")" != "${PACKAGES[*]}" ]; then
    # A chroot kept from an earlier list: what was added since is installed into it.
    log "apt-get install ${PACKAGES[*]} (in the chroot)"
    apt_in_chroot "${PACKAGES[*]}"
    printf '%s\n' "${PACKAGES[*]}" >"$CH/.complete"
fi

# The host's own trust anchors (a proxy's or a company's CA, added under
# /usr/local/share/ca-certificates) are the chroot's too: pip and cargo reach the same hosts.
if ! diff -rq /usr/local/share/ca-certificates "$CH/usr/local/share/ca-certificates" >/dev/null 2>&1; then
    rm -rf "$CH/usr/local/share/ca-certificates"
    cp -r /usr/local/share/ca-certificates "$CH/usr/local/share/ca-certificates"
    chroot "$CH" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin update-ca-certificates >/dev/null
fi

# Mounted in this order, unmounted in the reverse, whatever happens: the chroot must never be
# deleted or reused with the clone or the toolchain still mounted in it.
mounts=()
cleanup() {
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}"
    done
}
trap cleanup EXIT
bind() {
    mkdir -p "$CH$2"
    mount --bind "$1" "$CH$2"
    mounts+=("$CH$2")
}
bind /dev /dev
bind /dev/pts /dev/pts
bind /dev/shm /dev/shm # Chromium's shared memory
mount -t proc proc "$CH/proc"
mounts+=("$CH/proc")
mount -t sysfs sysfs "$CH/sys"
mounts+=("$CH/sys")
bind "${RUSTUP_HOME:-$HOME/.rustup}" /root/.rustup
bind "${CARGO_HOME:-$HOME/.cargo}" /root/.cargo
bind "$ROOT" "$ROOT"
# The tests' Python clients (scripts/tools-venv.sh) with Debian 13's Python, where the tests
# look for them: the host's .venv-tools is linked to Debian 12's Python.
chroot "$CH" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    "$ROOT/scripts/tools-venv.sh" /opt/audit-trail-tools-venv
bind "$CH/opt/audit-trail-tools-venv" "$ROOT/.venv-tools"

# shellcheck disable=SC2016 # expanded in the chroot
install_extension='
    cd extension
    cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
    share="$("$PG_CONFIG" --sharedir)/extension"
    install -m 644 sql/audit_trail--0.1.0.sql sql/audit_trail--0.2.0.sql "$share/"
    version="$(sed -n "s/^version = \"\(.*\)\"/\1/p" ../Cargo.toml | head -1)"
    cmp -s "$share/audit_trail--$version.sql" "sql/audit_trail--$version.sql" || {
        echo "debian13: the install script built for 17 differs from extension/sql/audit_trail--$version.sql" >&2
        exit 1
    }
    cd ..'
[ "$with_extension" = 1 ] || install_extension=:
[ "$with_extension" = 0 ] || log "cargo pgrx install --release (PostgreSQL 17)"

chroot "$CH" env -i PATH=/root/.cargo/bin:/usr/lib/postgresql/17/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo LANG=C.UTF-8 \
    CARGO_TARGET_DIR="$TARGET" PGRX_PG_CONFIG_PATH=/usr/lib/postgresql/17/bin/pg_config \
    PG_CONFIG=/usr/lib/postgresql/17/bin/pg_config "${passed[@]}" \
    sh -c 'set -e; cd "$1"; eval "$2"; shift 2; exec "$@"' sh "$ROOT" "$install_extension" "$@"
