#!/usr/bin/env bash
# A short check-and-measure pass on the GPU machine for speed work (a few minutes): the CUDA
# kernel suite, the GPU reference-model tests, then llama_tp bench on the Llama-3 shapes
# (bf16 8B at depth 0 and 8192 with prefill, 1B, 8B int8; decodes also without programmatic
# dependent launch, int8 also on the float path),
# then the kernel bench if carried. Usage: BUILD=.device-data/bin bash scripts/gpu_quick.sh
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-cuda}
export LD_LIBRARY_PATH="$PWD/$build/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LLAMA_TP_SHARED=${LLAMA_TP_SHARED:-$PWD/.device-data}
bin="$build/llama_tp"
bench() { echo "## bench $*"; timeout 240 "$bin" bench "$@" 2>&1 | grep -E "^\||error" | grep -v "^|---"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if [[ ${SKIP_TESTS:-0} != 1 ]]; then
  timeout 300 "$build/tests/test_kernels" --gtest_filter="*Cuda*" 2>&1 | grep -E "^\[  FAILED|PASSED|FAILED  \]|Failure|Expected|Which is|rel_error|at " | head -40
  timeout 300 "$build/tests/test_runtime" --gtest_filter='*Cuda*' 2>&1 | grep -E "^\[  FAILED|PASSED|FAILED  \]|Failure|int8 \]" | head -30
fi
bench -m llama3-8b -p 2048 -n 128 -d 0,8192 -r 2 --ctx-size 8448 ${BENCH_EXTRA:-}
LLAMA_TP_PDL=0 bench -m llama3-8b -p 0 -n 128 -r 2 ${BENCH_EXTRA:-}
LLAMA_TP_PDL=0 bench -m llama3-8b -p 0 -n 128 -d 8192 -r 2 --ctx-size 8448 ${BENCH_EXTRA:-}
bench -m llama3.2-1b -p 128 -n 128 -r 3 ${BENCH_EXTRA:-}
LLAMA_TP_PDL=0 bench -m llama3.2-1b -p 0 -n 128 -r 3 ${BENCH_EXTRA:-}
bench -m llama3-8b -p 512 -n 128 -r 2 --quant int8 ${BENCH_EXTRA:-}
LLAMA_TP_INT8_DOT=0 bench -m llama3-8b -p 0 -n 128 -r 2 --quant int8 ${BENCH_EXTRA:-}
if [[ -x ${KBENCH:-.device-data/kbench/kernel_bench} ]]; then
  echo "## kernel bench"; timeout 200 "${KBENCH:-.device-data/kbench/kernel_bench}" 2>&1
  echo "## kernel bench, int8 on the float path"; LLAMA_TP_INT8_DOT=0 timeout 200 "${KBENCH:-.device-data/kbench/kernel_bench}" 2>&1 | sed -n '/linear/,/^$/p'
fi
