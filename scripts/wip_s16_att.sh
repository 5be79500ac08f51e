#!/usr/bin/env bash
# WIP (session 16): decode attention variants against the build (.device-data/bin):
# PRE first round of K/V rows copied to shared memory before the wait; CMB one fence and the
# splits' outputs loaded with their max/sum in the combine; ALL both.
set -uo pipefail
cd "$(dirname "$0")/.."
B=.device-data/bin
export LD_LIBRARY_PATH="$PWD/$B/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
export LLAMA_TP_SHARED=$PWD/.device-data
t0=$(date +%s)
bench() { local b=$1; shift; echo "## $(( $(date +%s) - t0 ))s $b $*"; timeout 100 $b/llama_tp bench "$@" 2>&1 | grep -E "^\||error" | grep -v "^|---" | grep -v "^| model" | cut -c60-200; }
tests() { echo "test $*"; timeout 150 "$@" 2>&1 | grep -E "^\[  FAILED|PASSED|FAILED  \]|Failure|Which is|error" | head -12; }
V() { echo .device-data/v_$1; }
for v in PRE CMB ALL; do tests $(V $v)/test_kernels --gtest_filter='*CudaAttention*'; done
for i in 1 2; do
  for b in $B $(V PRE) $(V CMB) $(V ALL); do bench $b -m llama3-8b -p 0 -n 128 -r 2; done
done
for b in $B $(V ALL); do bench $b -m llama3-8b -p 0 -n 128 -r 2 --quant int8; done
for b in $B $(V PRE) $(V CMB) $(V ALL); do bench $b -m llama3-8b -p 0 -n 128 -d 1024 -r 2; done
for b in $B $(V ALL); do bench $b -m llama3-8b -p 0 -n 128 -d 8192 -r 2 --ctx-size 8448; done
for b in $B $(V ALL); do bench $b -m llama3.2-1b -p 0 -n 128 -r 3; bench $b -m tinyllama-1.1b -p 0 -n 128 -r 3; done
tl() { echo "## timeline $*"; LLAMA_TP_TIMELINE=1 timeout 100 "$@" 2>&1 | grep -E "^\| (gemv|att)" | cut -c1-160; }
tl $(V ALL)/llama_tp bench -m llama3-8b -p 0 -n 64 -r 1
echo "## done $(( $(date +%s) - t0 ))s"
