#!/usr/bin/env bash
# The main command (README: `make demo`): set-up on a fresh machine, then the whole job on local
# defaults against MySQL at RECSYS_MYSQL_* (default 127.0.0.1:3306, root, no password):
# simulate a shop → recsys_train DAG → live events → recsys_refresh DAG → one user's top-10 before/after.
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s)
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
: "${DEMO_USERS:=2000}" "${DEMO_ITEMS:=1000}" "${DEMO_DAYS:=14}" "${DEMO_SEED:=42}" "${DEMO_USE_TF:=true}"
mkdir -p .local
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
timed() { local t0; t0=$(date +%s); "$@"; echo "($(( $(date +%s) - t0 )) s)"; }
# one line per log record we care about, without the timestamp/level/logger decoration
show() { grep -E "$1" "$2" | sed -E 's/^[^]]*\] +//; s/ +\[[a-z._]+\] loc=.*$//; s/, logical_date=.*(run_duration=[0-9.]+).*(state=[a-z]+).*/: \1 s, \2/' | cut -c1-240 || true; }

step "1/6 databases and raw schema (fresh)"
recsys db reset --yes

step "2/6 simulate ${DEMO_USERS} users, ${DEMO_ITEMS} items, ${DEMO_DAYS} days up to now (seed ${DEMO_SEED})"
timed recsys data simulate --users "$DEMO_USERS" --items "$DEMO_ITEMS" --days "$DEMO_DAYS" --seed "$DEMO_SEED"

step "3/6 Airflow: recsys_train (freshness → dbt via Cosmos → GX → train/evaluate/gate → GX-checked publish)"
scripts/airflow.sh pools set gpu 1 "GPU training slots" >/dev/null
scripts/airflow.sh pools set recsys_dbt 1 "one dbt task at a time across the train and refresh DAGs" >/dev/null
scripts/airflow.sh dags test recsys_train -c "{\"use_tf\": ${DEMO_USE_TF}}" > .local/demo_train.log 2>&1 \
  || { tail -40 .local/demo_train.log; echo "recsys_train failed (log: .local/demo_train.log)"; exit 1; }
show "train: run|DagRun Finished" .local/demo_train.log
python -m ml.orchestration.demo snapshot .local/demo_topn_before.json

step "4/6 live traffic: 30 s of new events at 40 events/s"
timed recsys data feed --rate 40 --duration 30 --seed 7

step "5/6 Airflow: recsys_refresh (realtime dbt models → GX → re-score only the users who acted)"
scripts/airflow.sh dags test recsys_refresh > .local/demo_refresh.log 2>&1 \
  || { tail -40 .local/demo_refresh.log; echo "recsys_refresh failed (log: .local/demo_refresh.log)"; exit 1; }
show "refresh: |DagRun Finished" .local/demo_refresh.log

step "6/6 what the serving layer sees"
python -m ml.orchestration.demo compare .local/demo_topn_before.json
recsys db status

cat <<MSG

Done in $(( $(date +%s) - t_start )) s. Next:
  MLflow UI:   .venv/bin/mlflow ui --backend-store-uri sqlite:///$PWD/.local/mlflow/mlflow.db   → http://127.0.0.1:5000
  Airflow UI:  scripts/airflow.sh standalone   → http://localhost:8080 (login in .local/airflow/simple_auth_manager_passwords.json.generated)
  Serving:     .venv/bin/recsys serve --port 8000   → http://127.0.0.1:8000/recommendations/<user_id>
  Data Docs:   .local/gx/data_docs/index.html
MSG
