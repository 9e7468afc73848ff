#!/usr/bin/env bash
# Set up from nothing and run the main job on the embedded default index (SQLite):
# install, fetch one real published model file, fingerprint it into the index, and
# look it up again by the hash Hugging Face publishes for it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --disable-pip-version-check -e .
file=$(python tests/fetch_models.py | awk -F'\t' '$1 == "minilm" {print $2}')
modelscan fingerprint --save "$file"
modelscan where 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
modelscan db info
