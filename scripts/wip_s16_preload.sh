#!/usr/bin/env bash
# WIP (session 16): float GEMVs preload up to LLAMA_TP_GEMV_PRELOAD_BATCHES batches into shared
# memory before the wait (1: as before).
set -uo pipefail
cd "$(dirname "$0")/.."
B=.device-data/bin
export LD_LIBRARY_PATH="$PWD/$B/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
export LLAMA_TP_SHARED=$PWD/.device-data
t0=$(date +%s)
bench() { echo "## $(( $(date +%s) - t0 ))s pre=${LLAMA_TP_GEMV_PRELOAD_BATCHES:-} $*"; timeout 100 $B/llama_tp bench "$@" 2>&1 | grep -E "^\||error" | grep -v "^|---" | grep -v "^| model" | cut -c60-200; }
tests() { echo "test pre=${LLAMA_TP_GEMV_PRELOAD_BATCHES:-} $*"; timeout 150 "$@" 2>&1 | grep -E "^\[  FAILED|PASSED|FAILED  \]|Failure|Which is|error" | head -12; }
for n in 3 8; do LLAMA_TP_GEMV_PRELOAD_BATCHES=$n tests $B/tests/test_kernels --gtest_filter='*Cuda*Gemv*:*CudaLinear*:*CudaInt8*:*Fused*'; done
for i in 1 2; do
  for n in 1 2 3 4 6; do LLAMA_TP_GEMV_PRELOAD_BATCHES=$n bench -m llama3-8b -p 0 -n 128 -r 2; done
done
for n in 1 3 6; do LLAMA_TP_GEMV_PRELOAD_BATCHES=$n bench -m llama3.2-1b -p 0 -n 128 -r 3; done
for n in 1 3 6; do LLAMA_TP_GEMV_PRELOAD_BATCHES=$n bench -m llama3-8b -p 0 -n 128 -d 8192 -r 2 --ctx-size 8448; done
for n in 1 3; do LLAMA_TP_GEMV_PRELOAD_BATCHES=$n bench -m llama2-7b -p 0 -n 128 -r 2; done
tl() { echo "## timeline pre=${LLAMA_TP_GEMV_PRELOAD_BATCHES:-} $*"; LLAMA_TP_TIMELINE=1 timeout 100 $B/llama_tp bench "$@" 2>&1 | grep -E "^\| (gemv|att)" | cut -c1-160; }
LLAMA_TP_GEMV_PRELOAD_BATCHES=3 tl -m llama3-8b -p 0 -n 64 -r 1
LLAMA_TP_GEMV_PRELOAD_BATCHES=6 tl -m llama3-8b -p 0 -n 64 -r 1
echo "## done $(( $(date +%s) - t0 ))s"
