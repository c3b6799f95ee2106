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
# No test may reach the network. In the pytest process, pytest-socket allows Unix sockets only
# (addopts in pyproject.toml; tests/conftest.py); the notebooks' kernels are other processes, so
# every HTTP(S) client is also sent to a closed local port (the installs above are done by then).
export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9
export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY all_proxy=$ALL_PROXY NO_PROXY=localhost,127.0.0.1 no_proxy=localhost,127.0.0.1
# The unit and slow tests in 2 processes, a test file each at a time (pytest-xdist); then the notebooks
# in order in one process (each reads what the ones before it wrote).
.venv/bin/python -m pytest tests -n 2 --dist loadfile "$@"
.venv/bin/python -m pytest --nbval-lax notebooks "$@"
