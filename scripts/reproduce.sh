#!/usr/bin/env bash
# The README's study command: set up .venv (if needed), install the package, then run
# notebooks 01-08 with papermill on a profile (default: cpu). Extra arguments go to msa-study,
# e.g. `bash scripts/reproduce.sh --profile smoke` or `--from 04`; relative folders in --set
# are taken from the directory you run this script in.
set -euo pipefail
caller=$PWD
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
cd "$caller"
exec "$repo/.venv/bin/msa-study" "$@"
