#!/usr/bin/env bash
# Re-compile requirements.txt from requirements.in in a throwaway venv (exact pins, pip check clean).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3.11 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q -r requirements.in
"$tmp/venv/bin/pip" check
{
  echo "# Exact pins of the main venv, compiled from requirements.in by scripts/lock.sh (pip freeze of a"
  echo "# clean install; \`pip check\` clean). Do not edit by hand: change requirements.in and re-lock."
  "$tmp/venv/bin/pip" freeze
} > requirements.txt
rm -rf "$tmp"
echo "requirements.txt re-locked"
