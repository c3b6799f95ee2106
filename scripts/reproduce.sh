#!/usr/bin/env bash
# The README's study command: set up .venv (if needed), install the package, then run
# notebooks 01-06 with papermill on a profile (default: cpu). Extra arguments go to msa-study,
# e.g. `bash scripts/reproduce.sh --profile smoke` or `--from 04`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
.venv/bin/msa-study "$@"
