#!/usr/bin/env bash
# The test command (README): set-up, lint (sqlfluff + ruff), then the four test families against the
# real MariaDB/MySQL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/lint.sh
export RECSYS_DB_PREFIX="${RECSYS_DB_PREFIX:-test_}"
.venv/bin/python -m pytest tests "$@"
