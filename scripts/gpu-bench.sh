#!/usr/bin/env bash
# Runs on a lent GPU machine (H100/H200; see scripts/gpu-prepare.sh for how the files get there):
# unpacks the CUDA build and the model, checks the greedy output against the CPU build's, and runs
# `aisle bench llm --json` at concurrency 1, 8 and 32 with paged attention on and off, sampling
# GPU memory while each runs. Writes $OUT/gpu-h100.json (or ./gpu/gpu-h100.json without $OUT).
# Well under 10 minutes on an H100; reruns cleanly. A smoke test on the CPU, here:
#   AISLE_CPU_SMOKE=1 AISLE_BIN=target/debug/aisle AISLE_GPU_CONCURRENCY="1 2" \
#   AISLE_GPU_BENCH_ARGS="--runs 1 --prompt-tokens 32 --gen-tokens 8" scripts/gpu-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-gpu}
work=${AISLE_GPU_WORK:-/tmp/aisle-gpu}
mkdir -p "$work" "$out"

# The CUDA runtime libraries: a PyTorch cu13 environment's (the driver's libcuda comes from the
# system), unless LD_LIBRARY_PATH already has them.
if [ -z "${AISLE_CPU_SMOKE:-}" ]; then
    command -v nvidia-smi >/dev/null || { echo "nvidia-smi is not on PATH" >&2; exit 1; }
    libs=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
    [ -d "$libs" ] && export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

# The binary and the model.
bin=${AISLE_BIN:-$work/aisle}
if [ -z "${AISLE_BIN:-}" ]; then
    xz -dc gpu/aisle-cuda.xz > "$bin"
    chmod +x "$bin"
fi
model=$work/model.gguf
cat gpu/model.part-* > "$model"
echo "$(cat gpu/model.sha256)  $model" | sha256sum -c --quiet -
export AISLE__LLM__MODEL=$model
"$bin" --help >/dev/null

gpu_name=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo none)
runs=()
# Samples used GPU memory every 200 ms into $1 while the command after it runs.
with_memory() {
    local file=$1; shift
    ( while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1; sleep 0.2; done ) > "$file" &
    local sampler=$!
    "$@"
    local rc=$?
    kill $sampler 2>/dev/null || true
    return $rc
}

# Correctness: the greedy reply to the fixed prompt, as the CPU build gave it.
greedy=$("$bin" bench llm --json --runs 1 --prompt-tokens 64 --gen-tokens 8 --greedy-check |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["greedy_text"])')

for paged in true false; do
    for c in ${AISLE_GPU_CONCURRENCY:-1 8 32}; do
        echo "paged attention $paged, concurrency $c" >&2
        export AISLE__LLM__PAGED_ATTENTION=$paged
        line=$(with_memory "$work/mem.txt" \
            "$bin" bench llm --json ${AISLE_GPU_BENCH_ARGS:---runs 3 --prompt-tokens 256 --gen-tokens 128} --concurrency "$c")
        mem=$(sort -n "$work/mem.txt" | tail -1)
        runs+=("$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["paged_attention"]=sys.argv[2]=="true"; r["gpu_memory_mib"]=int(sys.argv[3]) if sys.argv[3] else None; print(json.dumps(r))' "$line" "$paged" "${mem:-}")")
    done
done

python3 - "$out/gpu-h100.json" "$gpu_name" "$greedy" "${runs[@]}" <<'EOF'
import json, sys
path, gpu, greedy, *runs = sys.argv[1:]
cpu = json.load(open("gpu/cpu-greedy.json")).get("greedy_text")
doc = {
    "command": "scripts/gpu-bench.sh (after scripts/build-cuda.sh and scripts/gpu-prepare.sh)",
    "gpu": gpu,
    "greedy_text_gpu": greedy,
    "greedy_text_cpu": cpu,
    "greedy_matches_cpu": greedy == cpu,
    "runs": [json.loads(r) for r in runs],
}
json.dump(doc, open(path, "w"), indent=1, ensure_ascii=False)
print(json.dumps(doc, ensure_ascii=False))
EOF
