#!/usr/bin/env bash
# The test command (README): set-up, lint (sqlfluff + ruff), then the four test families against the
# real MariaDB/MySQL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/lint.sh
export RECSYS_DB_PREFIX="${RECSYS_DB_PREFIX:-test_}"
# two workers (RECSYS_TEST_WORKERS, 0 = none), each with its own databases (tests/conftest.py); a
# test file stays on one worker, so its module fixtures are built once; files go out in collection
# order, the long flows (marked schedule_first) first, instead of xdist's most-tests-first
workers="${RECSYS_TEST_WORKERS:-2}"
xdist=()
if [ "$workers" != "0" ]; then xdist=(-n "$workers" --dist loadfile --no-loadscope-reorder); fi
.venv/bin/python -m pytest "${xdist[@]}" tests "$@"
