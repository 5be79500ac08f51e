#!/usr/bin/env bash
# Run ON THE GPU MACHINE: stall reasons and memory figures of single GEMV launches in the kernel
# bench (scripts/device_kernel_bench.sh), for the int8 speed work of issue 7: bf16 gate/up,
# int8 gate/up on the integer (dp4a) path, int8 gate/up on the float path. The kernel bench launches
# each GEMV 1155 times per dtype and shape (qkv, o, gate_up, ...): the skip counts pick gate/up.
set -uo pipefail
kbench=${KBENCH:-.device-data/kbench/kernel_bench}
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
stalls=""
for s in long_scoreboard lg_throttle mio_throttle math_pipe_throttle barrier wait short_scoreboard not_selected \
         selected no_instruction dispatch_stall tex_throttle drain membar imc_miss branch_resolving sleeping; do
  stalls+="smsp__average_warps_issue_stalled_${s}_per_issue_active.ratio,"
done
metrics="${stalls}dram__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum,launch__grid_size,launch__registers_per_thread"
for pick in "gemv_kernel 4625 bf16-gate_up 1" "gemv_kernel 5780 int8-dot-gate_up 1" "gemv_kernel 5780 int8-float-gate_up 0"; do
  set -- $pick
  echo "=== $3"
  LLAMA_TP_INT8_DOT=$4 timeout 200 "$ncu" --clock-control none -k regex:"$1" --launch-skip "$2" --launch-count 1 \
    --metrics "$metrics" "$kbench" 2>&1 | grep -E "^\s+(smsp|dram|gpu__|sm__|l1tex|launch)" | awk '$NF != "0" && $NF != "0.00"' | sed 's/smsp__average_warps_issue_stalled_//'
done
# The int8 GEMV kernels' machine code, by instruction kind (where cuobjdump is present): the
# count per 16-byte chunk is what decides whether the kernel can stream at full bandwidth.
if command -v cuobjdump >/dev/null && [[ -x .device-data/bin/llama_tp ]]; then
  echo "=== SASS of the int8 gemv_kernel instances (instruction kinds)"
  cuobjdump --dump-sass --function-pattern 'gemv_kernelIa' .device-data/bin/llama_tp 2>/dev/null |
    grep -oE '^\s+/\*[0-9a-f]+\*/\s+[A-Z][A-Z0-9_.]*' | awk '{print $2}' | sed 's/\..*//' | sort | uniq -c | sort -rn | head -25
fi
