#!/usr/bin/env bash
# Run dbt from its own venv with the project's profile: scripts/dbt.sh build --select tag:realtime
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export DBT_PROFILES_DIR="${DBT_PROFILES_DIR:-$root/dbt_project}"
export DBT_SEND_ANONYMOUS_USAGE_STATS=False
cd "$root/dbt_project"
exec "${RECSYS_DBT_VENV:-$root/.venv-dbt}/bin/dbt" "$@"
