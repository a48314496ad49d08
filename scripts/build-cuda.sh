#!/usr/bin/env bash
# Builds aisle with CUDA (mistral.rs's CUDA kernels and paged attention, candle on the GPU) on a
# machine without a GPU or a CUDA toolkit, from NVIDIA's CUDA 13.0 wheels on PyPI.
#
#   scripts/build-cuda.sh            → $AISLE_CUDA_CACHE/out/aisle-cuda (stripped) and aisle-cuda.xz
#
# With a CUDA toolkit installed (nvcc on PATH, a driver present) none of this is needed:
#   cargo build --release --features cuda
#
# What it does (idempotent; the only network use is the registry fetch of the pinned wheels):
# 1. pip-downloads the pinned CUDA 13.0 wheels (13.0, not newer: driver 580 rejects newer PTX);
# 2. unpacks them into a toolkit tree under the cache (nvidia/cu13: bin/nvcc, include, lib), with the
#    unversioned .so links the linker looks for;
# 3. builds a link-time stub libcuda.so (soname libcuda.so.1) exporting the driver API that cudarc
#    declares: no wheel ships the driver library; the real one replaces the stub at run time. Every
#    stub function returns CUDA_ERROR_NO_DEVICE (100), so on a machine without the NVIDIA driver
#    the binary still starts with LD_LIBRARY_PATH=$AISLE_CUDA_CACHE/stub and finds no GPU (then
#    fails cleanly, or runs on the CPU with llm.cpu_fallback = true);
# 4. builds `aisle --features cuda` for compute capability $CUDA_COMPUTE_CAP (default 90: H100/H200)
#    in its own target dir, strips and compresses it.
#
# At run time the binary needs libcudart.so.13, libcublas(Lt).so.13, libcurand.so.10 and the
# driver's libcuda.so.1 (LD_LIBRARY_PATH; a PyTorch cu13 venv's site-packages/nvidia/cu13/lib has
# the first ones), and nvidia-smi on PATH. See scripts/gpu-bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${AISLE_CUDA_CACHE:-$HOME/.cache/aisle/cuda}
out=$cache/out
cap=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${AISLE_CUDA_TARGET:-$HOME/.cache/aisle/target-cuda}

wheels=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
    nvidia-cublas==13.1.0.3
    nvidia-curand==10.4.0.35
    nvidia-cuda-nvrtc==13.0.88
)

# 1. The wheels.
mkdir -p "$cache/wheels" "$out"
if [ "$(ls "$cache"/wheels/*.whl 2>/dev/null | wc -l)" -lt ${#wheels[@]} ]; then
    echo "aisle: fetching the CUDA 13.0 wheels from PyPI" >&2
    python3 -m pip download --no-deps -q -d "$cache/wheels" "${wheels[@]}"
fi

# 2. The toolkit tree.
toolkit=$cache/toolkit
cuda=$toolkit/nvidia/cu13
if [ ! -x "$cuda/bin/nvcc" ]; then
    echo "aisle: unpacking the CUDA toolkit into $toolkit" >&2
    rm -rf "$toolkit"
    mkdir -p "$toolkit"
    for w in "$cache"/wheels/*.whl; do
        python3 -m zipfile -e "$w" "$toolkit"
    done
    chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/* 2>/dev/null || true
fi
for lib in cudart cublas cublasLt nvrtc curand; do
    real=$(ls "$cuda"/lib/lib$lib.so.* 2>/dev/null | sort | head -1)
    [ -n "$real" ] || { echo "aisle: lib$lib missing from the wheels" >&2; exit 1; }
    ln -sfn "$(basename "$real")" "$cuda/lib/lib$lib.so"
done

# 3. The driver stub: every cu* function cudarc's driver bindings declare.
stub=$cache/stub
if [ ! -f "$stub/libcuda.so" ]; then
    cudarc=$(cargo metadata --format-version 1 --features cuda --locked 2>/dev/null | python3 -c '
import json, sys
meta = json.load(sys.stdin)
dirs = [p["manifest_path"].rsplit("/", 1)[0] for p in meta["packages"]
        if p["name"] == "cudarc" and p["version"].startswith("0.19.")]
print(dirs[0] if dirs else "")')
    [ -n "$cudarc" ] || { echo "aisle: cudarc 0.19 not found in cargo metadata" >&2; exit 1; }
    mkdir -p "$stub"
    grep -ohE 'fn cu[A-Za-z0-9_]+\(' "$cudarc"/src/driver/sys/*.rs | grep -oE 'cu[A-Za-z0-9_]+' |
        sort -u | awk '{print "int " $1 "(void) { return 100; }"}' > "$stub/stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/stub.c"
    ln -sfn libcuda.so "$stub/libcuda.so.1"
    echo "aisle: driver stub with $(wc -l < "$stub/stub.c") symbols" >&2
fi

# 4. The build.
export CUDA_HOME=$cuda CUDA_PATH=$cuda CUDA_ROOT=$cuda
export PATH=$cuda/bin:$PATH
export CUDA_COMPUTE_CAP=$cap
export CUDARC_CUDA_VERSION=13000
export LIBRARY_PATH=$stub:$cuda/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "aisle: building with CUDA (compute capability $cap) into $CARGO_TARGET_DIR" >&2
cargo build --release --locked --features cuda --bin aisle
strip -o "$out/aisle-cuda" "$CARGO_TARGET_DIR/release/aisle"
xz -9 -T0 -c "$out/aisle-cuda" > "$out/aisle-cuda.xz"
ls -l "$out/aisle-cuda" "$out/aisle-cuda.xz" >&2
echo "$out/aisle-cuda.xz"
