#!/usr/bin/env bash
# WIP (session 16): the decode attention pulls a share (LLAMA_TP_ATTENTION_L2_PREFETCH, 0..1) of
# the output projection's weights into L2 before its wait.
set -uo pipefail
cd "$(dirname "$0")/.."
B=.device-data/bin
export LD_LIBRARY_PATH="$PWD/$B/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
export LLAMA_TP_SHARED=$PWD/.device-data
t0=$(date +%s)
bench() { echo "## $(( $(date +%s) - t0 ))s pf=${LLAMA_TP_ATTENTION_L2_PREFETCH:-} $*"; timeout 100 $B/llama_tp bench "$@" 2>&1 | grep -E "^\||error" | grep -v "^|---" | grep -v "^| model" | cut -c60-200; }
for i in 1 2; do
  for f in 0 0.25 0.5 1; do LLAMA_TP_ATTENTION_L2_PREFETCH=$f bench -m llama3-8b -p 0 -n 128 -r 2; done
  for f in 0 0.5 1; do LLAMA_TP_ATTENTION_L2_PREFETCH=$f bench -m llama3-8b -p 0 -n 128 -r 2 --quant int8; done
done
for f in 0 1; do LLAMA_TP_ATTENTION_L2_PREFETCH=$f bench -m llama3.2-1b -p 0 -n 128 -r 3; done
for f in 0 1; do LLAMA_TP_ATTENTION_L2_PREFETCH=$f bench -m llama3-8b -p 0 -n 128 -d 8192 -r 2 --ctx-size 8448; done
for f in 0 1; do LLAMA_TP_ATTENTION_L2_PREFETCH=$f bench -m llama2-7b -p 0 -n 128 -r 2; done
tl() { echo "## timeline pf=${LLAMA_TP_ATTENTION_L2_PREFETCH:-} $*"; LLAMA_TP_TIMELINE=1 timeout 100 $B/llama_tp bench "$@" 2>&1 | grep -E "^\| (gemv|att)" | cut -c1-160; }
LLAMA_TP_ATTENTION_L2_PREFETCH=1 tl -m llama3-8b -p 0 -n 64 -r 1
LLAMA_TP_ATTENTION_L2_PREFETCH=1 tl -m llama3-8b -p 0 -n 64 -r 1 --quant int8
echo "## done $(( $(date +%s) - t0 ))s"
