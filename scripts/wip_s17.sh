#!/usr/bin/env bash
# WIP (session 17): the one-pass split combine of the decode attention against the two-pass one
# (LLAMA_TP_ATTENTION_ONE_PASS_COMBINE=0), with the CUDA suites and the reference models.
# run(command="tar xJf .device-pack/d.tar.xz && bash scripts/wip_s17.sh", carry=[".device-pack/d.tar.xz"])
set -uo pipefail
cd "$(dirname "$0")/.."
B=.device-data/bin
export LD_LIBRARY_PATH="$PWD/$B/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
export LLAMA_TP_SHARED=$PWD/.device-data
t0=$(date +%s)
tag() { echo "one_pass=${LLAMA_TP_ATTENTION_ONE_PASS_COMBINE:-1}"; }
bench() { echo "## $(( $(date +%s) - t0 ))s $(tag) $*"; timeout 60 $B/llama_tp bench "$@" 2>&1 | grep -E "^\||error" | grep -v "^|---" | grep -v "^| model" | cut -c60-200; }
tests() { echo "test $(tag) $*"; timeout 100 "$@" 2>&1 | grep -E "^\[  FAILED|PASSED|FAILED  \]|Failure|Which is|error" | head -12; }
tests $B/tests/test_kernels --gtest_filter='*Cuda*'
tests $B/tests/test_runtime --gtest_filter='*Cuda*:*Int8*'
timeout 60 python3 scripts/compare_reference.py --bin $B/llama_tp --models .device-data/models --label "np1" 2>&1 | tail -3
for i in 1 2; do
  for v in 0 1; do
    export LLAMA_TP_ATTENTION_ONE_PASS_COMBINE=$v
    bench -m llama3-8b -p 0 -n 128 -r 2; bench -m llama3-8b -p 0 -n 128 -r 2 --quant int8
    bench -m llama3-8b -p 0 -n 128 -d 1024 -r 2
  done
done
for v in 0 1; do
  export LLAMA_TP_ATTENTION_ONE_PASS_COMBINE=$v
  bench -m llama3-8b -p 0 -n 128 -d 8192 -r 2 --ctx-size 8448; bench -m llama3.2-1b -p 0 -n 128 -r 3
done
echo "## done $(( $(date +%s) - t0 ))s"
