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
# Two things at once: the notebooks in order in one process (nbval, lax mode; each reads what the ones
# before it wrote), its report shown when it ends; and the tests in 2 processes (pytest-xdist, a test file
# each at a time, the slow files first: tests/conftest.py). Each has its own results and cache folders.
MSA_RESULTS_DIR="$work/nb/results" MSA_CACHE_DIR="$work/nb/cache" \
  .venv/bin/python -m pytest --nbval-lax notebooks "$@" > "$work/notebooks.log" 2>&1 &
notebooks=$!
trap 'kill "$notebooks" 2>/dev/null || true; rm -rf "$work"' EXIT
status=0
.venv/bin/python -m pytest tests -n 2 --dist loadfile --no-loadscope-reorder "$@" || status=$?
wait "$notebooks" || status=$((status ? status : $?))
cat "$work/notebooks.log"
exit "$status"
