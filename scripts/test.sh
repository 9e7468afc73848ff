#!/usr/bin/env bash
# Set up from nothing and run the whole test suite: the README's test command.
# Creates .venv, installs the package with its test extra (torch 2.13 CPU is a
# test-only dependency), fetches the pinned real model files, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --disable-pip-version-check -e ".[test]"
python tests/fetch_models.py >/dev/null
exec pytest -q "$@"
