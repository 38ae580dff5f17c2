#!/usr/bin/env bash
# Airflow on local defaults: AIRFLOW_HOME under .local/airflow (ignored), SQLite metadata DB, the
# project's dags/ folder, no examples, low parallelism for 2 cores. Migrates the DB on first use.
#   scripts/airflow.sh dags test recsys_train        # run a DAG once, in-process
#   scripts/airflow.sh standalone                     # UI on http://localhost:8080
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/.local/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-2}"
export AIRFLOW__COSMOS__ENABLE_TELEMETRY=False
export AIRFLOW__COSMOS__CACHE_DIR="$AIRFLOW_HOME/cosmos-cache"
export PATH="$root/.venv/bin:$PATH"   # `airflow standalone` spawns `airflow` children by name
mkdir -p "$AIRFLOW_HOME"
if [ ! -f "$AIRFLOW_HOME/.migrated" ]; then
  airflow db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/migrate.log" >&2; exit 1; }
  touch "$AIRFLOW_HOME/.migrated"
fi
exec airflow "$@"
