#!/usr/bin/env bash
# llama.cpp baseline for `aisle bench llm`: prefill/decode tok/s, time to first token and peak RSS of
# the same GGUF and synthetic prompt, through a pinned xllamacpp wheel (llama.cpp's server in-process)
# in its own venv. Arguments go to scripts/bench_llamacpp.py (--prompt-tokens, --gen-tokens,
# --threads, --runs, --model, --json). Quiet the machine first: llama.cpp's threads spin-wait, so
# other load on the cores skews the numbers a lot.
# Usage: scripts/bench-llamacpp.sh [--json] [--prompt-tokens N] [--gen-tokens M] [--threads T]
set -euo pipefail
cd "$(dirname "$0")/.."
XLLAMACPP_VERSION=2026.10.11549
venv=${AISLE_CACHE:-$HOME/.cache/aisle}/venv-llamacpp
py=${PYTHON:-$(command -v python3.11 || command -v python3)}

if [ ! -x "$venv/bin/python" ]; then
    echo "aisle: creating $venv" >&2
    "$py" -m venv "$venv"
fi
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("xllamacpp"))' 2>/dev/null)" \
     != "$XLLAMACPP_VERSION" ]; then
    echo "aisle: installing xllamacpp==$XLLAMACPP_VERSION into $venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "xllamacpp==$XLLAMACPP_VERSION" >&2
fi
exec "$venv/bin/python" scripts/bench_llamacpp.py "$@"
