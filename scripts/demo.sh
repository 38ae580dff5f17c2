#!/usr/bin/env bash
# The main command (README: `make demo`): set-up on a fresh machine, then the whole job on local
# defaults against MySQL at RECSYS_MYSQL_* (default 127.0.0.1:3306, root, no password).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
: "${DEMO_USERS:=2000}" "${DEMO_ITEMS:=1000}" "${DEMO_DAYS:=14}" "${DEMO_SEED:=42}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/3 databases and raw schema"
recsys db init

step "2/3 simulate ${DEMO_USERS} users, ${DEMO_ITEMS} items, ${DEMO_DAYS} days of behaviour (seed ${DEMO_SEED})"
recsys db reset --yes
recsys data simulate --users "$DEMO_USERS" --items "$DEMO_ITEMS" --days "$DEMO_DAYS" --seed "$DEMO_SEED"

step "3/3 status"
recsys db status
