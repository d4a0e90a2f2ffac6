#!/usr/bin/env bash
# The Python clients the tests and benchmarks use, pinned, from PyPI into a virtualenv
# (default: the clone's .venv-tools/, ignored by git), idempotently:
#   - DuckDB, an independent Parquet reader (tests/e2e/archive.rs, bench/archive.sh);
#   - PyJWT (with cryptography) and Schemathesis, clients of the JSON API that no one here
#     wrote: PyJWT mints the viewer tokens an application would, Schemathesis tests the API
#     against its OpenAPI description (tests/e2e/api_conformance.rs).
# Debian's Python is "externally managed" and refuses pip installs outside a venv. Debian's
# python3 (not a pyenv or other one first on PATH), so the venv is the same on every machine;
# scripts/debian13.sh makes another with Debian 13's Python for the PostgreSQL 17 runs.
#
#   scripts/tools-venv.sh [DIR]
set -euo pipefail

DUCKDB_VERSION="2.0.1"
PYJWT_VERSION="2.10.1"
SCHEMATHESIS_VERSION="4.32.5"
venv="${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv-tools}"

if "$venv/bin/python" - 2>/dev/null <<PY; then exit 0; fi
import sys
from importlib.metadata import version
sys.exit(not (version("duckdb") == "${DUCKDB_VERSION}" and version("PyJWT") == "${PYJWT_VERSION}"
              and version("schemathesis") == "${SCHEMATHESIS_VERSION}"))
PY
printf 'tools-venv: python3 -m venv %s; pip install duckdb==%s PyJWT==%s schemathesis==%s\n' \
    "$venv" "$DUCKDB_VERSION" "$PYJWT_VERSION" "$SCHEMATHESIS_VERSION" >&2
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==${DUCKDB_VERSION}" \
    "PyJWT[crypto]==${PYJWT_VERSION}" "schemathesis==${SCHEMATHESIS_VERSION}"
