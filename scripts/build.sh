#!/usr/bin/env bash
# Configures and builds llama_tp into ./build (CUDA backend included when nvcc is found).
# Extra arguments go to cmake, e.g. -DLLAMA_TP_CUDA=OFF or -DCMAKE_CUDA_ARCHITECTURES=90.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j "${JOBS:-2}"
echo "build: $build/llama_tp"
