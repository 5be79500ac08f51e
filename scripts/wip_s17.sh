#!/usr/bin/env bash
# WIP (session 17): decode attention variants (scripts/device_variant.sh): rolled (staged K/V rows
# and rolled loops for every group size) and min128 (splits of at least 128 keys), against main.
# run(command="tar xJf .device-pack/v.tar.xz && bash scripts/wip_s17.sh", carry=[".device-pack/v.tar.xz"])
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH="$PWD/.device-data/bin/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
t0=$(date +%s)
bench() { local b=$1; shift; echo "## $(( $(date +%s) - t0 ))s $b $*"; timeout 100 .device-data/$b/llama_tp bench "$@" 2>&1 | grep -E "^\||error" | grep -v "^|---" | grep -v "^| model" | cut -c60-200; }
for v in v_rolled v_min128; do echo "test $v"; timeout 120 .device-data/$v/test_kernels --gtest_filter='*Attention*' 2>&1 | grep -E "^\[  FAILED|PASSED|FAILED  \]|Failure" | head -5; done
for i in 1 2; do
  for b in bin v_rolled v_min128; do
    bench $b -m llama3-8b -p 0 -n 128 -r 2; bench $b -m llama3-8b -p 0 -n 128 -r 2 --quant int8
  done
done
for b in bin v_rolled v_min128; do
  bench $b -m llama3.2-1b -p 0 -n 128 -r 3; bench $b -m llama3-8b -p 0 -n 128 -d 1024 -r 2
  bench $b -m llama3-8b -p 0 -n 128 -d 8192 -r 2 --ctx-size 8448; bench $b -m llama2-7b -p 0 -n 128 -r 2
done
echo "## done $(( $(date +%s) - t0 ))s"
