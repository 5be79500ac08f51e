#!/usr/bin/env bash
# Everything the GPU machine checks, in one `run` call (see scripts/device_prepare.sh for the
# carry list). Steps (STEPS=comma list, default all): tests (CUDA suites + compute-sanitizer),
# reference (shared models on the GPU: np1, np1 with NCCL, np2 on one GPU with --comm mpi),
# hf8b (Llama-3-8B shape vs HF transformers), bench (llama_tp bench), hfbench (HF static cache),
# int8 (scripts/int8_gpu_check.sh: int8 tests, 8B int8 bench, 70B int8 tp1 and np4 at 24 GiB),
# memcheck (compute-sanitizer memcheck over the CUDA suites). RACECHECK_FILTER: a gtest filter
# for racecheck in the tests step (default: none).
# Logs go to $OUT (or /tmp/gpu_all); a summary table is printed at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-cuda}
models=${MODELS:-.device-data/models}
# The test suites find the reference models under $LLAMA_TP_SHARED/models (without it they skip).
export LLAMA_TP_SHARED=${LLAMA_TP_SHARED:-$(cd "$(dirname "$models")" && pwd)}
logs=${OUT:-/tmp/gpu_all}
steps=${STEPS:-tests,reference,hf8b,bench,hfbench,int8,memcheck}
mkdir -p "$logs"
export LD_LIBRARY_PATH="$PWD/$build/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 NCCL_NVLS_ENABLE=0
export PYTHONUNBUFFERED=1
bin="$build/llama_tp"
export LLAMA_TP_BIN="$PWD/$bin"
summary="$logs/summary.md"
: >"$summary"
has() { [[ ",$steps," == *",$1,"* ]]; }
note() { echo "$*" | tee -a "$summary"; }

note "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
if has tests; then
  note "## CUDA test suites"
  OUT="$logs" RACECHECK_FILTER="${RACECHECK_FILTER-}" MEMCHECK_FILTER="NONE" timeout 300 bash scripts/gpu_check.sh "$build" >"$logs/gpu_check.out" 2>&1
  grep -hE "^\[  FAILED  \]|Failure$" -A3 "$logs"/test_*.log | grep -v "^--" | head -40 | tee -a "$summary"
  tail -4 "$logs/gpu_check.out" | tee -a "$summary"
fi
if has reference; then
  note "## Reference models on the GPU"
  timeout 120 python3 scripts/compare_reference.py --bin "$bin" --models "$models" --label "np1 cuda" 2>&1 | tee -a "$summary"
  timeout 120 python3 scripts/compare_reference.py --bin "$bin" --models "$models" --label "np1 nccl" --extra="--comm nccl" \
    --launch "mpirun -np 1" 2>&1 | tee -a "$summary"
  timeout 180 python3 scripts/compare_reference.py --bin "$bin" --models "$models" --label "np2 mpi, one GPU" \
    --extra="--comm mpi" --launch "mpirun -np 2" 2>&1 | tee -a "$summary"
  timeout 120 python3 scripts/compare_reference.py --bin "$bin" --models "$models" --label "np1 f32 KV + precise activations" \
    --extra="--kv-dtype f32 --precise-activations" 2>&1 | tee -a "$summary"
  timeout 120 python3 scripts/compare_reference.py --bin "$bin" --models "$models" --label "np1 no graphs" \
    --extra=--no-cuda-graphs 2>&1 | tee -a "$summary"
  if [[ -f "$models/stories260K/stories260K.bin" ]]; then
    note "stories260K.bin on cuda: $(timeout 60 "$bin" -m "$models/stories260K/stories260K.bin" --backend cuda --temp 0 -n 40 2>/dev/null | head -c 200)"
  fi
fi
if has hf8b; then
  note "## Llama-3-8B shape bf16: llama_tp vs HF transformers (same weights)"
  timeout ${HF8B_TIMEOUT:-420} python3 scripts/hf_compare.py --bin "$bin" --dir /tmp/llama3-8b \
    2>&1 | grep -E "^\||inv_freq|failed" | tee -a "$summary"
  rm -rf /tmp/llama3-8b
fi
if has bench; then
  note "## llama_tp bench (bf16, batch 1)"
  # (Depth 128: the positions HF decodes after its 128-token prompt, scripts/hf_bench.py.)
  timeout 200 "$bin" bench -m llama3-8b -p 128,2048 -n 128 -d 0,128,8192 -r 3 --ctx-size 8448 -o json ${BENCH_EXTRA:-} \
    >"$logs/bench8b.json" 2>"$logs/bench8b.err"; tail -2 "$logs/bench8b.err"
  timeout 100 "$bin" bench -m llama3.2-1b -p 128 -n 128 -d 0,128 -r 3 -o json ${BENCH_EXTRA:-} >"$logs/bench1b.json" 2>"$logs/bench1b.err"
  tail -2 "$logs/bench1b.err"
fi
if has hfbench; then
  timeout 200 python3 scripts/hf_bench.py --shape llama3-8b --prompt 128 --gen 128 >"$logs/hf.jsonl" 2>"$logs/hfbench.err"
  timeout 120 python3 scripts/hf_bench.py --shape llama3.2-1b --prompt 128 --gen 128 >>"$logs/hf.jsonl" 2>>"$logs/hfbench.err"
fi
if has bench; then
  note "## llama_tp vs HF transformers (bf16, static cache), same machine, same call"
  python3 scripts/bench_table.py --ours "$logs/bench8b.json" "$logs/bench1b.json" \
    $( [[ -f "$logs/hf.jsonl" ]] && echo --peer "$logs/hf.jsonl" ) 2>&1 | tee -a "$summary"
fi
if has int8; then
  note "## int8 (scripts/int8_gpu_check.sh)"
  OUT="$logs/int8" timeout ${INT8_TIMEOUT:-420} bash scripts/int8_gpu_check.sh "$build" 2>&1 | grep -vF "[ int8 ] cpu " | tee -a "$summary"
fi
if has memcheck; then
  note "## compute-sanitizer memcheck"
  OUT="$logs" RACECHECK_FILTER="" FILTER="NONE" timeout ${MEMCHECK_TIMEOUT_ALL:-400} bash scripts/gpu_check.sh "$build" 2>&1 | tail -8 | tee -a "$summary"
fi
