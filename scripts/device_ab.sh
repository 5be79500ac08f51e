#!/usr/bin/env bash
# Run ON THE GPU MACHINE: a same-call A/B of builds for speed work. The build in .device-data/bin
# and each variant .device-data/v_<name> (scripts/device_variant.sh) run `llama_tp bench` in
# turn, ROUNDS times (so that a drift of the machine spreads over all of them), on Llama-3-8B
# bf16 at depths 0 and 1024, 8B int8, Llama-3.2-1B, and (first round) 8B at depth 8192; then
# each test's mean t/s per build. Between calls the same build moves by 1-2% with the machine;
# within one, by a few tenths of a percent.
#   usage: VARIANTS="name1 name2" [ROUNDS=2] [DEPTHS=0,1024] [TESTS="bf16 int8 1b d8192"] [OUT=dir]
#          bash scripts/device_ab.sh   (TESTS: a subset of those four, e.g. "int8" for an int8 change)
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH="$PWD/.device-data/bin/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
out=${OUT:-/tmp/device_ab}
mkdir -p "$out"
bench() {
  local dir=$1; shift
  timeout 120 ".device-data/$dir/llama_tp" bench "$@" 2>&1 | grep -E "^\| [a-z]|rror" | grep -v "^| model" | sed "s/^/$dir /"
}
tests=${TESTS:-bf16 int8 1b d8192}
for round in $(seq "${ROUNDS:-2}"); do
  for dir in bin $(for v in ${VARIANTS:-}; do echo "v_$v"; done); do
    [[ -x .device-data/$dir/llama_tp ]] || { echo "device_ab: no .device-data/$dir/llama_tp" >&2; continue; }
    has() { [[ " $tests " == *" $1 "* ]]; }
    has bf16 && bench "$dir" -m llama3-8b -p 0 -n 128 -d "${DEPTHS:-0,1024}" -r 3
    has int8 && bench "$dir" -m llama3-8b -p 0 -n 128 -r 3 --quant int8
    has 1b && bench "$dir" -m llama3.2-1b -p 0 -n 128 -r 3
    has d8192 && [[ $round == 1 ]] && bench "$dir" -m llama3-8b -p 0 -n 64 -d 8192 -r 2 --ctx-size 8448
  done
done >"$out/ab.log"
grep -i "rror" "$out/ab.log" | head -5
echo "mean t/s per build ($(grep -c . "$out/ab.log") rows in $out/ab.log)"
python3 - "$out/ab.log" <<'PY'
import collections, re, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.split("|")]
    m = re.search(r"([\d.]+) ±", line)
    if len(cells) > 6 and m:  # build | model | backend | tp | dtype | test | t/s ...
        runs[(f"{cells[1].split(' ')[0]} {cells[4]} {cells[5]}", cells[0])].append(float(m.group(1)))
tests = sorted({t for t, _ in runs})
builds = sorted({b for _, b in runs}, key=lambda b: (b != "bin", b))
print("| test | " + " | ".join(builds) + " |")
print("|---" * (len(builds) + 1) + "|")
for t in tests:
    base = runs.get((t, "bin"))
    cells = []
    for b in builds:
        v = runs.get((t, b))
        if not v:
            cells.append("")
            continue
        mean = sum(v) / len(v)
        rel = f" ({100 * (mean / (sum(base) / len(base)) - 1):+.1f}%)" if base and b != "bin" else ""
        cells.append(f"{mean:.1f}{rel}")
    print(f"| {t} | " + " | ".join(cells) + " |")
PY
