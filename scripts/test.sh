#!/usr/bin/env bash
# Installs everything the test suite needs (packages and real test servers) and runs it.
# Usage: scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
bash scripts/install-test-servers.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy cdir
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
