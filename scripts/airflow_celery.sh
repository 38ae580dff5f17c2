#!/usr/bin/env bash
# The DAGs on a real CeleryExecutor, end to end on this machine (no Docker): the production layout of
# docker-compose.yml with the PostgreSQL and Redis that already run here.
#   1. own AIRFLOW_HOME (.local/airflow-celery, never the demo's), PostgreSQL metadata DB (created if
#      missing), Redis broker, Celery result backend in PostgreSQL, the pools of compose's airflow-init;
#   2. a small simulated shop in the project's MySQL under its own RECSYS_DB_PREFIX (default celery_);
#   3. api-server, scheduler, dag-processor and two Celery workers (`default`; `default,gpu` like
#      compose's airflow-worker) in the background, logs under AIRFLOW_HOME/logs/processes;
#   4. ml/orchestration/celery_run.py triggers recsys_train, then recsys_refresh after one user acted,
#      through the REST API (as the data team would from the UI), waits and checks: both runs
#      succeeded, every task ran on a Celery worker (the train task on the gpu-queue worker), serving
#      changed for the acting user only;
#   5. stops every process it started (trap on EXIT), prints the summary, exits non-zero on a failure.
# Time-driven runs are off (scheduler use_job_schedule=false): unpausing recsys_train would otherwise
# start its @daily run with default Params next to the triggered one, and the refresh DAG's cron
# runs would race the triggered refresh for the new events. The run checks instead that the publish
# task emitted the asset the refresh DAG is scheduled on.
#   scripts/airflow_celery.sh                   # 10-15 min on this 2-core box (docs/scaling.md)
#   CELERY_FRESH=0 scripts/airflow_celery.sh    # keep the metadata DB (run history) of the last run
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
: "${CELERY_HOME:=$root/.local/airflow-celery}"
: "${CELERY_PG_URL:=postgresql+psycopg2://postgres@127.0.0.1:5432}"  # trust auth on this machine
: "${CELERY_PG_DB:=airflow_celery}"
: "${CELERY_REDIS_URL:=redis://127.0.0.1:6379}"
: "${CELERY_REDIS_DB:=1}"      # a Redis database of its own: flushed at start (stale task messages)
: "${CELERY_API_PORT:=18080}"
: "${CELERY_USERS:=300}" "${CELERY_ITEMS:=200}" "${CELERY_DAYS:=7}" "${CELERY_SEED:=7}"
: "${CELERY_FRESH:=1}"   # a fresh metadata DB: a run left `running` by an interrupted script would
                          # hold max_active_runs=1 and queue the new trigger behind it
: "${RECSYS_DB_PREFIX:=celery_}"   # empty counts as unset: never the demo's unprefixed databases
export RECSYS_DB_PREFIX

die() { echo "error: $*" >&2; exit 1; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
[[ "$CELERY_PG_DB" =~ ^[a-z0-9_]{1,63}$ ]] || die "CELERY_PG_DB=$CELERY_PG_DB: use lower-case letters, digits, _"
[[ "$CELERY_REDIS_DB" =~ ^[0-9]{1,2}$ ]] || die "CELERY_REDIS_DB=$CELERY_REDIS_DB: a Redis database number"
[ -x .venv/bin/airflow ] || die ".venv/bin/airflow not found: run scripts/setup.sh"
[ -f dbt_project/target/cosmos/manifest.json ] || die "no dbt manifest: run scripts/setup.sh"
pg_host_port="${CELERY_PG_URL#*@}"
pg_isready -h "${pg_host_port%:*}" -p "${pg_host_port#*:}" -q || die "PostgreSQL not answering at $pg_host_port"
redis_host_port="${CELERY_REDIS_URL#redis://}"
redis-cli -h "${redis_host_port%:*}" -p "${redis_host_port#*:}" ping >/dev/null || die "Redis not answering at $redis_host_port"
if (exec 3<>"/dev/tcp/127.0.0.1/$CELERY_API_PORT") 2>/dev/null; then
  die "port $CELERY_API_PORT is taken: set CELERY_API_PORT"
fi

t_start=$(date +%s)
declare -A took=()
timed() { local name=$1 t0; shift; t0=$(date +%s); "$@"; took[$name]=$(( $(date +%s) - t0 )); }

export AIRFLOW_HOME="$CELERY_HOME"
mkdir -p "$AIRFLOW_HOME/logs/processes"
# local secrets of this throwaway deployment (compose takes them from .env); shared by every
# process: the api-server checks the JWTs the scheduler signs for the workers' task runners
if [ ! -f "$AIRFLOW_HOME/secrets.env" ]; then
  (umask 077; .venv/bin/python -c "import secrets; from cryptography.fernet import Fernet
print(f'AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}')
print(f'AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(64)}')" >"$AIRFLOW_HOME/secrets.env")
fi
set -a; . "$AIRFLOW_HOME/secrets.env"; set +a
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=airflow:admin
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$CELERY_PG_URL/$CELERY_PG_DB"
export AIRFLOW__CELERY__BROKER_URL="$CELERY_REDIS_URL/$CELERY_REDIS_DB"
export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql://${CELERY_PG_URL#*://}/$CELERY_PG_DB"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$CELERY_API_PORT/execution/"
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=true
export AIRFLOW__CORE__LOAD_EXAMPLES=false
export AIRFLOW__CORE__PARALLELISM=4 AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=2
# a loaded 2-core box parses the Cosmos DAGs slowly: the 30/50 s defaults would record import errors
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=120 AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT=180
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=false
export AIRFLOW__COSMOS__ENABLE_TELEMETRY=false AIRFLOW__COSMOS__CACHE_DIR="$AIRFLOW_HOME/cosmos-cache"
export RECSYS_HOME="$AIRFLOW_HOME/recsys-home"   # MLflow store, GX state: this run's own
unset MLFLOW_TRACKING_URI
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"   # dags/ import ml.* from this checkout
export PATH="$root/.venv/bin:$PATH"
plog="$AIRFLOW_HOME/logs/processes"
# the workers import this module first: a Celery release the provider does not support (celery
# 5.7 dropped celery.backends.database.retry) must stop here with one line, not as a crashed worker
python -c "import airflow.providers.celery.executors.celery_executor_utils" >"$plog/preflight.log" 2>&1 \
  || { tail -3 "$plog/preflight.log" >&2; die "the Celery executor does not import with celery $(python -c 'import celery; print(celery.__version__)'): re-run scripts/setup.sh (requirements.txt pins a supported celery)"; }

pids=() names=()
start() {  # start NAME CMD...: own session (so its children stop with it), log in $plog/NAME.log
  local name=$1; shift
  setsid "$@" >"$plog/$name.log" 2>&1 &
  pids+=("$!"); names+=("$name")
  echo "started $name (pid $!, log $plog/$name.log)"
}
stop_all() {
  local rc=$? i alive
  trap - EXIT INT TERM
  [ ${#pids[@]} -eq 0 ] && exit "$rc"
  echo; echo "stopping ${names[*]}"
  for i in "${!pids[@]}"; do kill -TERM -- "-${pids[$i]}" 2>/dev/null || true; done
  for _ in $(seq 30); do
    alive=0
    for i in "${!pids[@]}"; do kill -0 -- "-${pids[$i]}" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 1
  done
  for i in "${!pids[@]}"; do
    if kill -0 -- "-${pids[$i]}" 2>/dev/null; then
      echo "  ${names[$i]} still running after 30 s: KILL"; kill -KILL -- "-${pids[$i]}" 2>/dev/null || true
    fi
  done
  exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT TERM
check_alive() {
  local i
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null || { tail -30 "$plog/${names[$i]}.log" >&2; die "${names[$i]} exited"; }
  done
}

step "1/4 Airflow metadata DB $CELERY_PG_DB (PostgreSQL), broker $CELERY_REDIS_URL/$CELERY_REDIS_DB, pools"
psql_() { psql -h "${pg_host_port%:*}" -p "${pg_host_port#*:}" -U postgres -d postgres -qtAc "$1"; }
if [ "$CELERY_FRESH" = 1 ]; then psql_ "DROP DATABASE IF EXISTS $CELERY_PG_DB WITH (FORCE)"; fi
[ "$(psql_ "SELECT 1 FROM pg_database WHERE datname='$CELERY_PG_DB'")" = 1 ] || psql_ "CREATE DATABASE $CELERY_PG_DB"
redis-cli -h "${redis_host_port%:*}" -p "${redis_host_port#*:}" -n "$CELERY_REDIS_DB" FLUSHDB >/dev/null
timed migrate airflow db migrate >"$plog/migrate.log" 2>&1 || { tail -30 "$plog/migrate.log"; die "airflow db migrate failed"; }
airflow pools set gpu 1 "GPU training slots" >/dev/null
airflow pools set recsys_dbt 1 "one dbt task at a time across the train and refresh DAGs" >/dev/null
echo "migrated in ${took[migrate]} s; pools gpu, recsys_dbt"

step "2/4 shop: ${CELERY_USERS} users, ${CELERY_ITEMS} items, ${CELERY_DAYS} days (seed ${CELERY_SEED}) in ${RECSYS_DB_PREFIX}recsys_*"
rm -rf "$RECSYS_HOME"
prepare_data() {
  python -m ml.cli db reset --yes
  python -m ml.cli data simulate --users "$CELERY_USERS" --items "$CELERY_ITEMS" --days "$CELERY_DAYS" --seed "$CELERY_SEED"
}
timed data prepare_data >"$plog/data.log" 2>&1 || { tail -30 "$plog/data.log"; die "preparing the shop failed"; }
tail -3 "$plog/data.log"

step "3/4 api-server :$CELERY_API_PORT, scheduler, dag-processor, Celery workers"
t0=$(date +%s)
start api-server airflow api-server --host 127.0.0.1 --port "$CELERY_API_PORT" --workers 1
start scheduler airflow scheduler
start dag-processor airflow dag-processor
# --skip-serve-logs: the task logs are files in this AIRFLOW_HOME that the api-server reads itself;
# a worker's log server would listen on every interface (and two on one host need two ports)
start worker-default airflow celery worker --celery-hostname "default@%h" --queues default \
  --concurrency 2 --skip-serve-logs
start worker-gpu airflow celery worker --celery-hostname "gpu@%h" --queues default,gpu \
  --concurrency 1 --skip-serve-logs
api="http://127.0.0.1:$CELERY_API_PORT"
for _ in $(seq 120); do
  curl -fsS "$api/api/v2/version" >/dev/null 2>&1 && break
  check_alive; sleep 3
done
curl -fsS "$api/api/v2/version" >/dev/null || die "API server not answering at $api after 6 min"
check_alive
took[startup]=$(( $(date +%s) - t0 ))
echo "API answers after ${took[startup]} s: $(curl -fsS "$api/api/v2/version")"

step "4/4 REST: trigger recsys_train, one user acts, trigger recsys_refresh; check"
t0=$(date +%s)
rc=0
python -m ml.orchestration.celery_run --api "$api" \
  --password-file "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" \
  --worker-log "worker-default=$plog/worker-default.log" --worker-log "worker-gpu=$plog/worker-gpu.log" \
  --gpu-worker worker-gpu --summary "$AIRFLOW_HOME/celery_run_summary.json" || rc=$?
took[drive]=$(( $(date +%s) - t0 ))
(check_alive) || rc=1   # a process that died during the drive fails the run

echo
echo "phases: migrate ${took[migrate]} s · shop ${took[data]} s · start-up to API ${took[startup]} s" \
  "· REST drive (both DAG runs + checks) ${took[drive]} s · total $(( $(date +%s) - t_start )) s"
echo "logs: $plog (processes), $AIRFLOW_HOME/logs/dag_id=* (tasks); summary: $AIRFLOW_HOME/celery_run_summary.json"
[ "$rc" = 0 ] || die "Celery run failed (exit $rc)"
echo "OK: recsys_train and recsys_refresh ran on the CeleryExecutor"
