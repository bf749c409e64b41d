#!/usr/bin/env bash
# The test command: installs spendgate with its dev extras into .venv, then runs every gate
# (ruff, mypy --strict, pytest with >= 90 % coverage of src/). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
  | sed '/^WARNING: Location/d'
.venv/bin/python -m pip check >/dev/null
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest --cov=spendgate --cov-report=term --cov-fail-under=90 "$@"
