#!/usr/bin/env bash
# The README's test command: set up .venv (if needed), install the package with its test
# extras, then run the unit tests and the notebooks (nbval, lax mode) on the `smoke` profile.
# Smoke outputs go to a temporary folder; nothing in the repository is modified.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
export MSA_PROFILE=smoke MSA_RESULTS_DIR="$work/results" MSA_CACHE_DIR="$work/cache"
.venv/bin/python -m pytest tests --nbval-lax notebooks "$@"
