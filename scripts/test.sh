#!/usr/bin/env bash
# Set up a virtualenv from the repo's own files and run every check: ruff, mypy, import-linter, pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k dispatch`).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

bash scripts/ensure-services.sh
bash scripts/ensure-browser.sh

echo "== ruff";          .venv/bin/ruff check src tests bench
echo "== mypy (strict)"; .venv/bin/mypy
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest";        .venv/bin/pytest "$@"
