#!/usr/bin/env bash
# Lint, as the test command runs it: SQL with sqlfluff from the dbt venv (config in
# dbt_project/.sqlfluff: MySQL dialect, jinja templater, no database needed), then Python with
# ruff from the main venv when it is installed there. Exits non-zero on the first failing step.
#   scripts/lint.sh          check everything
#   scripts/lint.sh --fix    let sqlfluff fix what it can first (review the diff)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dbt_venv="${RECSYS_DBT_VENV:-$root/.venv-dbt}"
sql_paths=(dbt_project/models dbt_project/macros dbt_project/tests)

if [ ! -x "$dbt_venv/bin/sqlfluff" ]; then
  echo "error: $dbt_venv/bin/sqlfluff not found: run scripts/setup.sh" >&2
  exit 1
fi
if [ "${1:-}" = "--fix" ]; then
  "$dbt_venv/bin/sqlfluff" fix "${sql_paths[@]}" || true
fi
echo "sqlfluff lint ${sql_paths[*]}"
# one process per core (18 -> 10 s on 2 cores); their shared semaphore makes multiprocessing warn at exit
PYTHONWARNINGS="ignore:resource_tracker:UserWarning" "$dbt_venv/bin/sqlfluff" lint --processes 0 "${sql_paths[@]}"

if [ -x "$root/.venv/bin/ruff" ]; then
  echo "ruff check / format --check: ml dags tests bench"
  "$root/.venv/bin/ruff" check ml dags tests bench && "$root/.venv/bin/ruff" format --check ml dags tests bench
else
  echo "ruff not installed in .venv: Python lint skipped"
fi
