#!/usr/bin/env bash
# Builds the Debian packages into dist/ (docs/packaging.md):
#
#   postgresql-<major>-audit-trail_<version>_amd64.deb  the extension, for each major given
#                                                       (PG_MAJORS, default 15): its .so,
#                                                       control file, install and upgrade
#                                                       scripts, as PGDG names them;
#   audit-trail_<version>_amd64.deb                     the command (/usr/bin/audit-trail),
#                                                       /etc/audit-trail/, systemd units.
#
# Plain dpkg-deb over a staged tree: nothing here needs debhelper, and the same script runs on
# a build machine and in CI. Each major's extension comes from `cargo pgrx package` against
# that major's pg_config (PG_CONFIG_<major>, by default Debian's path), and is installed
# where Debian's postgresql-<major> looks for extensions, whatever that pg_config reports.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
ARCH=amd64
DIST="${DIST:-$ROOT/dist}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
STAGE="$TARGET/package"
PG_MAJORS="${PG_MAJORS:-15}"
# Who answers for the packages: set it to your own team when you build them for your fleet.
MAINTAINER="${DEB_MAINTAINER:-audit_trail maintainers <audit-trail@example.org>}"

log() { printf 'package: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg-dev)"
mkdir -p "$DIST"

# The files every package documents itself with (Debian policy 12.5 and 12.7; a native
# package, its version has no Debian revision, so changelog.gz).
doc_files() {
    local doc="$1/usr/share/doc/$2"
    install -d -m 755 "$doc"
    cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: audit_trail
Source: https://github.com/audit-trail/audit-trail

Files: *
Copyright: 2026 audit_trail maintainers
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
    printf '%s (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
        "$2" "$VERSION" "$VERSION" "$MAINTAINER" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}")" |
        gzip -9n >"$doc/changelog.gz"
    chmod 644 "$doc/copyright" "$doc/changelog.gz"
}

# The oldest libc6 a binary runs on: the newest GLIBC_ symbol version it links (what
# dpkg-shlibdeps would find, without a debian/ source tree). The 17 extension, built on Debian
# 13, needs a newer one than what is built on Debian 12.
libc_floor() {
    local v
    v="$(objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
    [ -n "$v" ] || die "no GLIBC symbol versions in $1"
    echo "$v"
}

# Installed-Size in KiB, as dpkg counts it.
installed_size() { du -sk --exclude=DEBIAN "$1" | cut -f1; }

build_deb() {
    local tree="$1" name="$2"
    find "$tree" -type d -exec chmod 755 {} +
    dpkg-deb --root-owner-group -Zxz --build "$tree" "$DIST/${name}_${VERSION}_${ARCH}.deb" >/dev/null
    log "wrote dist/${name}_${VERSION}_${ARCH}.deb"
}

sidecar_package() {
    local name=audit-trail tree="$STAGE/audit-trail"
    log "cargo build --release -p audit-trail"
    cargo build --release -p audit-trail --quiet
    rm -rf "$tree"
    install -D -m 755 "$TARGET/release/audit-trail" "$tree/usr/bin/audit-trail"
    strip --strip-unneeded "$tree/usr/bin/audit-trail"
    # One manual page per command, from the same clap definition that parses the arguments.
    cargo run --release -p audit-trail --example manpage --quiet -- "$tree/usr/share/man/man1"
    chmod 644 "$tree"/usr/share/man/man1/*.1
    gzip -9n "$tree"/usr/share/man/man1/*.1
    install -D -m 644 packaging/audit-trail.env "$tree/etc/audit-trail/audit-trail.env"
    for unit in packaging/systemd/*; do
        install -D -m 644 "$unit" "$tree/lib/systemd/system/$(basename "$unit")"
    done
    doc_files "$tree" "$name"
    install -m 644 README.md "$tree/usr/share/doc/$name/README.md"
    install -d "$tree/DEBIAN"
    local libc
    libc="$(libc_floor "$tree/usr/bin/audit-trail")"
    cat >"$tree/DEBIAN/control" <<EOF
Package: $name
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $(installed_size "$tree")
Depends: libc6 (>= $libc), libgcc-s1, adduser
Recommends: postgresql-client
Suggests: postgresql-15-audit-trail | postgresql-16-audit-trail | postgresql-17-audit-trail | postgresql-18-audit-trail
Section: database
Priority: optional
Homepage: https://github.com/audit-trail/audit-trail
Description: audit log for PostgreSQL applications: export, follow, seal, dashboard
 The audit-trail command reads the audit_trail extension's log: exports it as
 CSV, follows it as a change stream, seals it in a signed hash chain and
 verifies it, archives closed months as Parquet, alerts, and serves the
 Audit Log dashboard. Systemd units run each of them as a service or timer.
EOF
    echo /etc/audit-trail/audit-trail.env >"$tree/DEBIAN/conffiles"
    install -m 755 packaging/debian/audit-trail.postinst "$tree/DEBIAN/postinst"
    install -m 755 packaging/debian/audit-trail.postrm "$tree/DEBIAN/postrm"
    install -m 755 packaging/debian/audit-trail.prerm "$tree/DEBIAN/prerm"
    build_deb "$tree" "$name"
}

extension_package() {
    local major="$1" name="postgresql-$1-audit-trail" tree="$STAGE/postgresql-$1-audit-trail"
    local var="PG_CONFIG_$major"
    local pg_config="${!var:-/usr/lib/postgresql/$major/bin/pg_config}"
    [ -x "$pg_config" ] || die "no pg_config for PostgreSQL $major at $pg_config (set $var)"
    log "cargo pgrx package --pg-config $pg_config"
    mkdir -p "$STAGE"
    # pgrx's build finds a major that `cargo pgrx init` did not register through this.
    (cd extension && PGRX_PG_CONFIG_PATH="$pg_config" \
        cargo pgrx package --pg-config "$pg_config" >"$STAGE/pgrx-$major.log" 2>&1) ||
        { cat "$STAGE/pgrx-$major.log" >&2; die "cargo pgrx package failed for PostgreSQL $major"; }
    local built="$TARGET/release/audit_trail-pg$major"
    local lib share
    lib="$built$("$pg_config" --pkglibdir)"
    share="$built$("$pg_config" --sharedir)/extension"
    [ -f "$lib/audit_trail.so" ] || die "cargo pgrx package wrote no $lib/audit_trail.so"
    rm -rf "$tree"
    # Debian's postgresql-<major> paths, whatever the building pg_config said.
    install -D -m 644 "$lib/audit_trail.so" "$tree/usr/lib/postgresql/$major/lib/audit_trail.so"
    strip --strip-unneeded "$tree/usr/lib/postgresql/$major/lib/audit_trail.so"
    install -d "$tree/usr/share/postgresql/$major/extension"
    install -m 644 "$share"/audit_trail.control "$share"/audit_trail--*.sql \
        "$tree/usr/share/postgresql/$major/extension/"
    # Install scripts of earlier versions, frozen (the Makefile's install does the same).
    install -m 644 extension/sql/audit_trail--0.1.0.sql extension/sql/audit_trail--0.2.0.sql \
        "$tree/usr/share/postgresql/$major/extension/"
    doc_files "$tree" "$name"
    install -d "$tree/DEBIAN"
    local libc
    libc="$(libc_floor "$tree/usr/lib/postgresql/$major/lib/audit_trail.so")"
    cat >"$tree/DEBIAN/control" <<EOF
Package: $name
Source: audit-trail
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $(installed_size "$tree")
Depends: postgresql-$major, libc6 (>= $libc), libgcc-s1
Section: database
Priority: optional
Homepage: https://github.com/audit-trail/audit-trail
Description: audit log for PostgreSQL applications (PostgreSQL $major extension)
 The audit_trail extension records every change to the tables it tracks, with
 who made it and when, in the same transaction as the change, into an
 append-only, partitioned log that admins read as SQL views. CREATE EXTENSION
 audit_trail in a database; no shared_preload_libraries entry is needed.
EOF
    build_deb "$tree" "$name"
}

# Debian 12 has no PostgreSQL 17: unless a pg_config for it is given, its package is built in
# the Debian 13 chroot (scripts/debian13.sh, root), against Debian 13's postgresql-server-dev-17.
in_debian13() {
    [ "$(id -u)" -eq 0 ] || die "PostgreSQL 17's package is built in a Debian 13 chroot, which needs root (or set PG_CONFIG_17, or PG_MAJORS without 17)"
    log "PostgreSQL 17 in the Debian 13 chroot"
    ./scripts/debian13.sh env PG_MAJORS=17 EXTENSIONS_ONLY=1 DIST="$DIST" \
        SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}" \
        DEB_MAINTAINER="$MAINTAINER" ./scripts/package.sh
}

for major in $PG_MAJORS; do
    if [ "$major" = 17 ] && [ -z "${PG_CONFIG_17:-}" ] && [ ! -x /usr/lib/postgresql/17/bin/pg_config ]; then
        in_debian13
    else
        extension_package "$major"
    fi
done
# The command's package is built here, on the oldest Debian supported, so that it runs on both.
[ "${EXTENSIONS_ONLY:-0}" = 1 ] || sidecar_package
