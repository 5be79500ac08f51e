#!/usr/bin/env bash
# Run ON THE GPU MACHINE: where the decode step's time goes, for the speed work of issues 6/7.
#   1. llama_tp bench on the Llama-3 shapes (bf16 8B at depth 0 and 8192, 1B, int8 8B);
#   2. the kernel bench (scripts/device_kernel_bench.sh build, carried in .device-data/kbench);
#   3. ncu: every kernel of a few 1B decode steps (graph nodes one by one) with its duration, so
#      that their sum can be held against the step time (the rest is launch gaps), and the
#      detailed sections of the int8 and bf16 GEMV and the decode attention in the kernel bench.
# Usage: BUILD=.device-data/bin bash scripts/gpu_profile.sh    (STEPS=bench,kbench,ncu)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-cuda}
logs=${OUT:-/tmp/gpu_profile}
steps=${STEPS:-bench,kbench,ncu}
mkdir -p "$logs"
export LD_LIBRARY_PATH="$PWD/$build/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin="$build/llama_tp"
kbench=${KBENCH:-.device-data/kbench/kernel_bench}
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
has() { [[ ",$steps," == *",$1,"* ]]; }
bench() { echo "## bench $*"; timeout 300 "$bin" bench "$@" 2>&1 | grep -E "^\||error" | grep -v "^|---"; }

nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
if has bench; then
  bench -m llama3-8b -p 2048 -n 128 -d 0,8192 -r 3 --ctx-size 8448 ${BENCH_EXTRA:-}
  bench -m llama3.2-1b -p 128 -n 128 -r 3 ${BENCH_EXTRA:-}
  bench -m llama3-8b -p 512 -n 128 -r 3 --quant int8 ${BENCH_EXTRA:-}
fi
if has kbench && [[ -x $kbench ]]; then
  echo "## kernel bench"
  timeout 300 "$kbench" 2>&1 | tee "$logs/kbench.txt"
fi
if has ncu && [[ -n $ncu ]]; then
  echo "## ncu: kernels of 1B decode steps ($ncu)"
  # 1B: 16 layers x 5 kernels + head; skip the prompt and warm-up, take 3 steps' worth.
  timeout 400 "$ncu" --clock-control none --graph-profiling node --metrics gpu__time_duration.sum \
    --launch-skip ${NCU_SKIP:-600} --launch-count ${NCU_COUNT:-300} --csv \
    "$bin" bench -m llama3.2-1b -p 0 -n 16 -r 1 >"$logs/ncu_1b.csv" 2>"$logs/ncu_1b.err"
  python3 - "$logs/ncu_1b.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("no ncu rows"); sys.exit()
h = rows[0]; k = h.index("Kernel Name"); v = h.index("Metric Value"); u = h.index("Metric Unit")
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows[1:]:
    t = float(r[v].replace(",", "")) * (1e-3 if r[u] == "nsecond" else 1.0 if r[u] == "usecond" else 1e3)
    name = r[k].split("(")[0].split("<")[0][:60] + ("<" + r[k].split("<")[1][:40] if "<" in r[k] else "")
    tot[name] += t; cnt[name] += 1
all_t = sum(tot.values())
for n in sorted(tot, key=lambda n: -tot[n]):
    print(f"{tot[n]:10.1f} us {cnt[n]:5d} x {tot[n]/cnt[n]:7.2f} us  {n}")
print(f"total {all_t:.1f} us over {sum(cnt.values())} kernels")
PY
  if [[ -x $kbench ]]; then
    echo "## ncu: GEMV and decode attention sections"
    # The kernel bench launches each GEMV 1155 times per dtype and shape (bf16 then int8; qkv,
    # o, gate_up, ...), then each attention case 55 times: skip counts pick single launches.
    : >"$logs/ncu_kernels.txt"
    for pick in "gemv_kernel 5 bf16-qkv" "gemv_kernel 1160 int8-qkv" "gemv_kernel 4625 bf16-gate_up" \
                "gemv_kernel 5780 int8-gate_up" "attention_decode 115 attn-pos8191"; do
      set -- $pick
      echo "=== $3" >>"$logs/ncu_kernels.txt"
      timeout 200 "$ncu" --clock-control none -k regex:"$1" --launch-skip "$2" --launch-count 1 \
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats \
        --section LaunchStats --section SchedulerStats "$kbench" >>"$logs/ncu_kernels.txt" 2>&1
    done
    grep -E "^===|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Issued Warp|No Eligible|Block Limit|Grid Size|Waves Per SM|Theoretical Occ" \
      "$logs/ncu_kernels.txt" | head -90
  fi
fi
