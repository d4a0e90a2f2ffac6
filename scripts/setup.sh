#!/usr/bin/env bash
# Installs what building and testing audit_trail needs on Debian 12, idempotently:
# each step checks first and does nothing when its result is already there.
# Versions are pinned so that every machine builds the same thing.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PGRX_VERSION="0.18.1"
WITH_BROWSER="${WITH_BROWSER:-1}"
# 15 is Debian 12's own package. The other majors are not packaged for Debian 12: 16 and 18
# are unpacked from pinned wheels into /opt/audit-trail-pg/<major> by scripts/majors.sh.
if [ "$PG_MAJOR" = 15 ]; then
    PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
else
    PG_CONFIG="/opt/audit-trail-pg/${PG_MAJOR}/bin/pg_config"
fi

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages=(
    libclang-dev clang pkg-config make openssl
    python3-venv # the DuckDB virtualenv below
)
if [ "$PG_MAJOR" = 15 ]; then
    apt_packages=("postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" "postgresql-contrib" "${apt_packages[@]}")
else
    # scripts/majors.sh unpacks the wheels; the server still runs as the `postgres` user,
    # which Debian's postgresql-common creates.
    apt_packages+=(postgresql-common curl unzip)
fi
if [ "$WITH_BROWSER" = 1 ]; then
    apt_packages+=(chromium chromium-driver)
fi

missing=()
for p in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Debian package starts a cluster of its own; the project never uses it, and it would
# hold port 5432 and memory for nothing.
if [ "$PG_MAJOR" = 15 ] && command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
    log "stopping the packaged PostgreSQL service (the project runs its own clusters)"
    as_root pg_ctlcluster --force "${PG_MAJOR}" main stop 2>/dev/null || true
fi

if ! cargo pgrx --version 2>/dev/null | grep -q " ${PGRX_VERSION}\$"; then
    log "cargo install cargo-pgrx ${PGRX_VERSION} (about 6 minutes on 2 cores)"
    cargo install cargo-pgrx --version "=${PGRX_VERSION}" --locked
fi

if [ "$PG_MAJOR" = 15 ]; then
    pgrx_config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    if ! grep -qs "^pg${PG_MAJOR} = \"${PG_CONFIG}\"" "$pgrx_config"; then
        log "cargo pgrx init --pg${PG_MAJOR} ${PG_CONFIG}"
        cargo pgrx init "--pg${PG_MAJOR}" "$PG_CONFIG"
    fi
else
    # No `cargo pgrx init` for these: ~/.pgrx/config.toml stays as it is, and pgrx's build
    # finds their pg_config through PGRX_PG_CONFIG_PATH (the Makefile sets it).
    "$(dirname "$0")/majors.sh" "$PG_MAJOR"
fi
# The pinned Python clients of the tests (DuckDB, PyJWT, Schemathesis) in .venv-tools/.
"$(dirname "$0")/tools-venv.sh"
log "ready: PostgreSQL ${PG_MAJOR}, cargo-pgrx ${PGRX_VERSION}"
