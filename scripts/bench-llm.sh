#!/usr/bin/env bash
# aisle's LLM engine (mistral.rs) against llama.cpp on the same GGUF, prompt and thread count, in one
# run: `aisle bench llm --json`, then scripts/bench-llamacpp.sh with the same arguments, then the
# ratios. Run it on a quiet machine: both engines use every thread they are given.
# Usage: scripts/bench-llm.sh [--prompt-tokens N] [--gen-tokens M] [--threads T] [--runs R]
# AISLE_BIN=path measures an already built aisle binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
# Error values that libraries create and discard must not capture (and symbolize) backtraces here.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
target=${CARGO_TARGET_DIR:-$HOME/.cache/aisle/target}
scripts/models.sh >&2
bin=${AISLE_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet --bin aisle
    bin=$target/release/aisle
fi
ours=$("$bin" bench llm --json "$@" | tail -n 1)
theirs=$(scripts/bench-llamacpp.sh --json "$@" | tail -n 1)
python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = lambda k: round(ours[k] / theirs[k], 3) if theirs.get(k) else None
print(json.dumps({
    "mistralrs": ours,
    "llamacpp": theirs,
    "ratio": {
        "prefill": ratio("prefill_tok_s"),
        "decode": ratio("decode_tok_s"),
        "ttft": ratio("ttft_ms"),
        "rss": ratio("rss_mb"),
    },
}))
PY
