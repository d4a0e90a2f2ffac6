# audit_trail: the two commands are `make demo` and `make test`; both set up a fresh Debian 12
# machine first (apt packages, cargo-pgrx, pgrx init), idempotently.

# PG_MAJOR picks the PostgreSQL the extension is built, installed and tested against: 15 is
# Debian 12's package; 16 and 18 are unpacked from pinned wheels into /opt/audit-trail-pg/<major>
# (scripts/majors.sh, run by setup). E.g. `make e2e PG_MAJOR=18`.
PG_MAJOR   ?= 15
ifeq ($(PG_MAJOR),15)
PG_CONFIG  ?= /usr/lib/postgresql/$(PG_MAJOR)/bin/pg_config
else
PG_CONFIG  ?= /opt/audit-trail-pg/$(PG_MAJOR)/bin/pg_config
# Only 15 is registered with `cargo pgrx init` (~/.pgrx/config.toml); pgrx's build reads the
# other majors' pg_config from here. The extension's feature names its major (default pg15).
export PGRX_PG_CONFIG_PATH := $(PG_CONFIG)
EXT_FEATURES := --no-default-features --features audit_trail/pg$(PG_MAJOR)
endif
CARGO      ?= cargo
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
export PG_CONFIG PG_MAJOR

.PHONY: all setup majors install build lint unit e2e test demo demo-stop demo-check bench clean package package-check

all: test

## Packages and tools (apt: postgresql-15, server headers, libclang, chromium; cargo-pgrx 0.18.1;
## for PG_MAJOR=16 or 18, that PostgreSQL from scripts/majors.sh instead of apt's).
setup:
	./scripts/setup.sh

## PostgreSQL 16 and 18 (pinned PyPI wheels, sha256-checked) into /opt/audit-trail-pg/16 and 18.
majors:
	./scripts/majors.sh

## Build the extension in release mode and install it into PG_CONFIG's PostgreSQL.
install: setup
	cd extension && $(CARGO) pgrx install --release --pg-config $(PG_CONFIG)
	@# Install scripts of earlier versions, frozen: an existing install can be recreated at
	@# its version (the upgrade test does). cargo pgrx copies the upgrade scripts itself.
	install -m 644 extension/sql/audit_trail--0.1.0.sql extension/sql/audit_trail--0.2.0.sql \
	    "$$($(PG_CONFIG) --sharedir)/extension/"
	@# The install script of this version is committed (extension/sql/audit_trail--$(VERSION).sql)
	@# so that what each release installs is reviewed; it must be what the build generates.
	@cmp -s "$$($(PG_CONFIG) --sharedir)/extension/audit_trail--$(VERSION).sql" extension/sql/audit_trail--$(VERSION).sql || \
	    { echo "install: extension/sql/audit_trail--$(VERSION).sql differs from the generated install script;"; \
	      echo "         if the change is intended: make schema-script"; exit 1; }

## Refreshes the committed install script of this version from the build.
schema-script: setup
	cd extension && $(CARGO) pgrx install --release --pg-config $(PG_CONFIG)
	cp "$$($(PG_CONFIG) --sharedir)/extension/audit_trail--$(VERSION).sql" extension/sql/

.PHONY: schema-script

## Regenerates the upgrade script to this version from its template (scripts/upgrade_script.py).
UPGRADE_FROM := 0.2.0
upgrade-script:
	python3 scripts/upgrade_script.py $(UPGRADE_FROM) $(VERSION)

.PHONY: upgrade-script

## Regenerates the portable install script (WAL capture) from the extension's and
## extension/portable/*.sql (scripts/portable_script.py).
portable-script:
	python3 scripts/portable_script.py $(VERSION)

.PHONY: portable-script

## The sidecar binary the end-to-end tests run.
build: setup
	$(CARGO) build -p audit-trail

lint: setup install
	python3 scripts/upgrade_script.py $(UPGRADE_FROM) $(VERSION) --check
	python3 scripts/portable_script.py $(VERSION) --check
	python3 scripts/house_rules.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(EXT_FEATURES) -- -D warnings

## Pure unit tests (no database, so none of setup's packages).
unit:
	$(CARGO) test -p audit-trail-contract -p audit-trail

## End-to-end tests: a throwaway cluster started by the tests, one database per test.
e2e: install build
	$(CARGO) test -p audit-trail-tests

test: lint unit e2e demo-check

## The end-to-end suite on the other majors, one after another (one sidecar build; the
## extension built once per major). 17 runs in a Debian 13 chroot (root; e2e-17).
MATRIX_MAJORS ?= 16 17 18
# Tests the wheels' own builds cannot pass, named here so that the skip is seen: neither
# wheel has OpenSSL (the server refuses ssl = on), and 16.2 predates PostgreSQL's fix that
# lets a table with statement-level transition-table triggers become a partition (upstream
# afdb4cd, in 16.3).
E2E_SKIP_16 := --skip tls::exports_over_tls_and_verify_the_server_when_asked \
               --skip bypass::a_tracked_table_becomes_a_partition_only_of_a_tracked_table
E2E_SKIP_18 := --skip tls::exports_over_tls_and_verify_the_server_when_asked
test-matrix: build
	@for major in $(MATRIX_MAJORS); do \
	    echo "test-matrix: PostgreSQL $$major"; \
	    if [ "$$major" = 17 ]; then $(MAKE) --no-print-directory e2e-17 || exit 1; \
	    else env -u PG_CONFIG -u PGRX_PG_CONFIG_PATH $(MAKE) --no-print-directory e2e-major PG_MAJOR=$$major || exit 1; fi; \
	done

e2e-major: install build
	$(CARGO) test -p audit-trail-tests -- $(E2E_SKIP_$(PG_MAJOR))

## PostgreSQL 17 is Debian 13's: the suite, built here, runs in a Debian 13 chroot where the
## extension is built against postgresql-server-dev-17 (scripts/e2e-debian13.sh; root).
e2e-17: build
	./scripts/e2e-debian13.sh

.PHONY: test-matrix e2e-major e2e-17

## A cluster of this clone's own (data under /var/tmp, see scripts/demo.sh) with a sample CRM,
## activity, a report, a CSV export, and the dashboard left running on http://127.0.0.1:8080.
demo: install
	$(CARGO) build --release -p audit-trail
	./scripts/demo.sh

## Stops the dashboard and the demo cluster.
demo-stop:
	./scripts/demo.sh stop

## The demo run twice from a copy in a directory only its owner can enter, checked, stopped
## (about 20 s; uses the installed extension and the debug binary).
demo-check: install build
	@command -v curl >/dev/null || { echo "demo-check: apt-get install curl"; \
	    sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl; }
	./scripts/demo-check.sh

## Debian packages into dist/: postgresql-<major>-audit-trail for each of PG_MAJORS and
## audit-trail (the command, /etc/audit-trail, systemd units); docs/packaging.md. 17's is built
## in the Debian 13 chroot (root); PG_MAJORS=15 builds without root.
PG_MAJORS ?= 15 17
package: setup
	@command -v dpkg-deb >/dev/null || { echo "package: apt-get install dpkg-dev"; exit 1; }
	PG_MAJORS="$(PG_MAJORS)" ./scripts/package.sh

## The packages installed in fresh chroots with no Rust, Debian 12 with PostgreSQL 15 and
## Debian 13 with 17: apt pulls PostgreSQL, CREATE EXTENSION captures, the units verify,
## lintian passes, dpkg -r removes them (root).
package-check: package
	./scripts/package-check.sh bookworm 15
	./scripts/package-check.sh trixie 17

clean:
	-./scripts/demo.sh clean
	$(CARGO) clean
	rm -rf .demo audit-report.csv

## Capture benchmark: no auditing vs audit_trail vs a PL/pgSQL trigger, in a throwaway cluster
## (about 7 minutes on 2 cores; BENCH_SECONDS, BENCH_ROUNDS, ... see bench/README.md).
bench: install
	./bench/run.sh

## The capture benchmark on PostgreSQL 17, Debian 13's, in the chroot (root); results tagged
## pg17 unless BENCH_TAG says otherwise. The same settings as bench.
bench-17:
	BENCH_TAG="$${BENCH_TAG:-pg17}" ./scripts/debian13.sh --with-extension ./bench/run.sh

.PHONY: bench-17

## History and undo: row_as_of and history of a row with 10,000 events in a log of 1,000,000,
## and revert_transaction of a 100,000-row import (bench/undo.sh; BENCH_* settings there).
bench-undo: install
	./bench/undo.sh

.PHONY: bench-undo

## WAL capture: writers with the portable install and `audit-trail capture` running, against
## no auditing (wal_level logical and replica) and the triggers; the service's events/s and lag
## (bench/wal.sh; about 25 minutes).
bench-wal: install
	$(CARGO) build --release -p audit-trail
	./bench/wal.sh

.PHONY: bench-wal

## Export benchmark: audit-trail export vs psql \copy over 1,000,000 generated events.
bench-export: install
	@[ -x /usr/bin/time ] || { echo "bench-export: apt-get install time (GNU time)"; \
	    sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time; }
	$(CARGO) build --release -p audit-trail
	./bench/export.sh

.PHONY: bench-export

## Dashboard benchmark: first page of filtered views over 1,000,000 events.
bench-dashboard: install
	$(CARGO) build --release -p audit-trail
	./bench/dashboard/run.sh

.PHONY: bench-dashboard

## Change-stream benchmark: events/s into the file sink, latency at 1,000 events/s.
bench-follow: install
	$(CARGO) build --release -p audit-trail
	./bench/follow.sh

.PHONY: bench-follow

## Integrity benchmark: seal and verify throughput over 1,000,000 events, seal lag at 1,000/s.
bench-integrity: install
	$(CARGO) build --release -p audit-trail
	./bench/integrity.sh

.PHONY: bench-integrity

## Alerts benchmark: built-in rules over 1,000,000 events, commit-to-webhook latency.
bench-alerts: install
	$(CARGO) build --release -p audit-trail
	./bench/alerts.sh

.PHONY: bench-alerts

## Archive benchmark: maintain and archive 1,000,000 events as Parquet, bytes per event vs the
## table, a DuckDB full scan.
bench-archive: install
	$(CARGO) build --release -p audit-trail
	./bench/archive.sh

.PHONY: bench-archive

## Scale benchmark: BENCH_EVENTS (10,000,000) events over 13 months; maintain (partitions and
## summary), the dashboard's first page of each filter and the Overview, export and archive of
## a month. About 7 GB of disk and 20 min on 2 cores at 10M.
bench-scale: install
	$(CARGO) build --release -p audit-trail
	./bench/scale.sh

.PHONY: bench-scale

## Retention benchmark: dropping a month of 1,000,000 events vs deleting them row by row
## (seconds and WAL).
bench-retention: install
	./bench/retention.sh

.PHONY: bench-retention

## Routing benchmark: capture's cost per statement with 0.1.0's single table vs 0.2.0's
## partitions, same library, side by side.
bench-routing: install
	./bench/routing.sh

.PHONY: bench-routing
