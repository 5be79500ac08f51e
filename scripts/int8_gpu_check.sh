#!/usr/bin/env bash
# Run ON THE GPU MACHINE (as scripts/gpu_check.sh): the figures issue 7 (int8 + memory plan)
# asks for, in one call so that bf16 and int8 are measured on the same card. Results (JSON and
# logs) go to $OUT (or /tmp/int8_check).
#   usage: scripts/int8_gpu_check.sh [build-dir]   (default build-cuda)
#   env:   SKIP_70B=1  leaves out the two 70B runs (minutes of dummy-weight generation each)
set -uo pipefail
build=${1:-build-cuda}
out=${OUT:-/tmp/int8_check}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/$build/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin=$build/llama_tp
echo "device: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)"

# 1. The int8 tests (GPU cases; they skip nowhere here).
"$build/tests/test_kernels" --gtest_filter='*CudaInt8*:Quantize*' --gtest_color=no >"$out/test_kernels.log" 2>&1
echo "test_kernels int8: rc $? ($(grep -E '^\[  (PASSED|FAILED) ' "$out/test_kernels.log" | tr '\n' ' '))"
"$build/tests/test_runtime" --gtest_filter='*Int8*:Llama2cV2*' --gtest_color=no >"$out/test_runtime.log" 2>&1
echo "test_runtime int8: rc $? ($(grep -E '^\[  (PASSED|FAILED) ' "$out/test_runtime.log" | tr '\n' ' '))"
grep -F '[ int8 ]' "$out/test_runtime.log"
"$build/tests/test_launch" --gtest_filter='*Int8*:CliErrors.ModelThatDoesNotFit*:MemoryPlan*' --gtest_color=no \
  >"$out/test_launch.log" 2>&1
echo "test_launch int8/plan: rc $? ($(grep -E '^\[  (PASSED|FAILED) ' "$out/test_launch.log" | tr '\n' ' '))"

# 2. Llama-3-8B shape, batch 1: bf16 against int8 (target: int8 >= 300 tok/s and >= 1.65x bf16),
#    and prompt throughput (int8 prefill dequantizes tiles for cuBLAS).
for q in none int8; do
  "$bin" bench -m llama3-8b --quant $q -p 512 -n 128 -r 5 -o json >"$out/llama3-8b-$q.json" 2>"$out/llama3-8b-$q.log"
  echo "llama3-8b --quant $q: rc $?"
  grep -oE '"(test|tokens_per_s|percent_of_bandwidth)": [^,]*' "$out/llama3-8b-$q.json" | paste -sd' '
done

if [[ -z "${SKIP_70B:-}" ]]; then
  # 3. Llama-3-70B int8 at tp 1 on one card (dummy weights).
  "$bin" bench -m llama3-70b --quant int8 --verbose -p 0 -n 32 -r 3 -o json >"$out/llama3-70b-int8-tp1.json" \
    2>"$out/llama3-70b-int8-tp1.log"
  echo "llama3-70b int8 tp1: rc $?"; grep -E 'memory plan' "$out/llama3-70b-int8-tp1.log"
  grep -oE '"(test|tokens_per_s|percent_of_bandwidth)": [^,]*' "$out/llama3-70b-int8-tp1.json" | paste -sd' '
  # 4. Four ranks on this one GPU, each held to 24 GiB (a 3090's worth): every rank's plan.
  mpirun --oversubscribe -np 4 "$bin" bench -m llama3-70b --quant int8 --gpu-memory-limit 24GiB --comm mpi --verbose \
    -c 2048 -p 0 -n 4 -r 1 -o json >"$out/llama3-70b-int8-np4.json" 2>"$out/llama3-70b-int8-np4.log"
  echo "llama3-70b int8 np4 --gpu-memory-limit 24GiB: rc $?"; grep -E 'memory plan|error' "$out/llama3-70b-int8-np4.log"
fi

# 5. The same model in bf16 does not fit 24 GiB per rank: one error line with what would fit.
mpirun --oversubscribe -np 4 "$bin" -m llama3-70b --gpu-memory-limit 24GiB --comm mpi --prompt-ids 1 -n 1 2>&1 | grep 'error'
