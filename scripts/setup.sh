#!/usr/bin/env bash
# One-step set-up on a fresh machine: Debian build deps, the main venv (.venv, exact pins from
# requirements.txt), the dbt venv (.venv-dbt, requirements-dbt.txt), the `recsys` console script
# and the dbt manifest that Cosmos renders. Re-running skips what is already up to date.
#   RECSYS_GPU=1 scripts/setup.sh   also installs requirements-gpu.txt (tensorflow[and-cuda], xgboost)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"' \
  || { echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

# 1. Debian packages the mysqlclient build needs (the MySQL provider compiles it from source).
need=()
for p in default-libmysqlclient-dev pkg-config gcc; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

stamp() { cat "$@" | sha256sum | cut -c1-16; }

make_venv() {  # make_venv DIR STAMP REQ...
  local dir=$1 want=$2; shift 2
  if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$want" ]; then
    echo "$dir up to date"; return
  fi
  echo "building $dir (a few minutes on a fresh machine)"
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  for req in "$@"; do "$dir/bin/pip" install -q -r "$req"; done
  "$dir/bin/pip" check
  echo "$want" > "$dir/.installed"
}

# 2. Main venv (Airflow, Cosmos, GX, MLflow, TensorFlow, LightGBM, XGBoost).
main_reqs=(requirements.txt)
if [ "${RECSYS_GPU:-0}" = "1" ]; then main_reqs+=(requirements-gpu.txt); fi
make_venv .venv "$(stamp "${main_reqs[@]}")" "${main_reqs[@]}"
if [ "${RECSYS_GPU:-0}" = "1" ]; then .venv/bin/pip uninstall -q -y tensorflow-cpu xgboost-cpu || true; fi
.venv/bin/pip install -q -e . --no-deps --no-build-isolation 2>/dev/null || .venv/bin/pip install -q -e . --no-deps

# 3. dbt venv (own protobuf; never co-installed with TensorFlow).
make_venv .venv-dbt "$(stamp requirements-dbt.txt)" requirements-dbt.txt

# 4. dbt manifest for Cosmos (LoadMode.DBT_MANIFEST); needs no database connection.
if [ -f dbt_project/dbt_project.yml ]; then
  # own target path: ad-hoc dbt runs with --vars (point-in-time builds) rewrite target/manifest.json
  scripts/dbt.sh parse --quiet --target-path target/cosmos
fi
echo "set-up done"
