#!/usr/bin/env bash
# Prepares what the GPU benchmark carries to a lent GPU machine (DEVELOPERS.md, "GPU checks"):
# gpu/aisle-cuda.xz (from scripts/build-cuda.sh), the default GGUF split into pieces that fit the
# per-call carry limit, and the CPU build's greedy reply for the correctness check.
#
#   scripts/gpu-prepare.sh
#
# Then, through the device tool, three calls in a row (the machine stays warm between them; the
# carried files stay there because gpu/ is git-ignored):
#   1. carry ["gpu/aisle-cuda.xz", "gpu/cpu-greedy.json", "gpu/model.sha256"]   command: true
#   2. carry ["gpu/model.part-aa"]                          command: true
#   3. carry ["gpu/model.part-ab"]                          command: scripts/gpu-bench.sh
# and give the machine back. The figures come back as $OUT/gpu-h100.json: copy them to
# bench/results/gpu-h100.json.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${AISLE_CUDA_CACHE:-$HOME/.cache/aisle/cuda}
model=models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$cache/out/aisle-cuda.xz" ] || { echo "run scripts/build-cuda.sh first" >&2; exit 1; }
[ -f "$model" ] || { echo "run scripts/models.sh first" >&2; exit 1; }
mkdir -p gpu
rm -f gpu/model.part-*
cp "$cache/out/aisle-cuda.xz" gpu/aisle-cuda.xz
split -b 50M "$model" gpu/model.part-
sha256sum "$model" | awk '{print $1}' > gpu/model.sha256

# The CPU build's greedy reply to the benchmark's fixed prompt (the CUDA build must match it).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/aisle/target}
bin=${AISLE_BIN:-$CARGO_TARGET_DIR/release/aisle}
[ -x "$bin" ] || bin=$CARGO_TARGET_DIR/debug/aisle
"$bin" bench llm --json --runs 1 --prompt-tokens 64 --gen-tokens 8 --greedy-check > gpu/cpu-greedy.json
ls -l gpu >&2
