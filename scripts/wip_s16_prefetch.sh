#!/usr/bin/env bash
# WIP (session 16): the new build (int8 GEMV in 16-warp blocks; L2 prefetch of each block's share,
# its cap in MB from LLAMA_TP_GEMV_L2_PREFETCH_MB) against main's previous build (v_OLD).
set -uo pipefail
cd "$(dirname "$0")/.."
B=.device-data/bin O=.device-data/v_OLD
export LD_LIBRARY_PATH="$PWD/$B/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
export LLAMA_TP_SHARED=$PWD/.device-data
t0=$(date +%s)
bench() { local b=$1; shift; echo "## $(( $(date +%s) - t0 ))s pf=${LLAMA_TP_GEMV_L2_PREFETCH_MB:-} $b $*"; timeout 100 $b/llama_tp bench "$@" 2>&1 | grep -E "^\||error" | grep -v "^|---" | grep -v "^| model" | cut -c60-200; }
tests() { echo "test $*"; timeout 150 "$@" 2>&1 | grep -E "^\[  FAILED|PASSED|FAILED  \]|Failure|Which is|error" | head -12; }
tests $B/tests/test_kernels --gtest_filter='*Cuda*'
tests $B/tests/test_runtime --gtest_filter='*Cuda*:*Int8*'
for i in 1 2; do
  bench $O -m llama3-8b -p 0 -n 128 -r 2
  for mb in 0 8 16 32 64; do LLAMA_TP_GEMV_L2_PREFETCH_MB=$mb bench $B -m llama3-8b -p 0 -n 128 -r 2; done
  bench $O -m llama3-8b -p 0 -n 128 -r 2 --quant int8
  for mb in 0 8 16 32 64; do LLAMA_TP_GEMV_L2_PREFETCH_MB=$mb bench $B -m llama3-8b -p 0 -n 128 -r 2 --quant int8; done
done
for mb in 0 4 16; do LLAMA_TP_GEMV_L2_PREFETCH_MB=$mb bench $B -m llama3.2-1b -p 0 -n 128 -r 3; done
for mb in 0 16; do LLAMA_TP_GEMV_L2_PREFETCH_MB=$mb bench $B -m llama3-8b -p 0 -n 128 -d 8192 -r 2 --ctx-size 8448; done
tl() { echo "## timeline pf=${LLAMA_TP_GEMV_L2_PREFETCH_MB:-} $*"; LLAMA_TP_TIMELINE=1 timeout 100 "$@" 2>&1 | grep -E "^\| (gemv|att)" | cut -c1-160; }
LLAMA_TP_GEMV_L2_PREFETCH_MB=16 tl $B/llama_tp bench -m llama3-8b -p 0 -n 64 -r 1
LLAMA_TP_GEMV_L2_PREFETCH_MB=16 tl $B/llama_tp bench -m llama3-8b -p 0 -n 64 -r 1 --quant int8
echo "## done $(( $(date +%s) - t0 ))s"
