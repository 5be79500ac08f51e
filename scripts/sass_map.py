#!/usr/bin/env python3
"""Where a kernel's machine code goes: SASS bytes per source function, in address order.

Each launch fetches its kernel's code cold (scripts/device_icache_probe.cu: about 13 KB a us on
an H200), so the code a kernel runs once per block (staging, epilogues, the split combine) costs
time in proportion to its size. This maps one kernel's SASS to the functions and lambdas of a
source file (by the line info), so that the large parts stand out.

  # a cubin with line info, for sm_90, from the build's own compile command of the source:
  cmd=$(ninja -C build-cuda -t commands llama_tp | grep -E -- "-c $PWD/kernels/attention.cu( |$)")
  cmd=$(sed -E 's# -MD -MT [^ ]+ -MF [^ ]+##; s# -o [^ ]+# -o /tmp/k.cubin#; s# -c # -cubin -lineinfo -c #;
         s#--generate-code=arch=compute_90,code=\\[compute_90,sm_90\\]#-arch=sm_90#' <<<"$cmd")
  (cd build-cuda && eval "$cmd")
  scripts/sass_map.py /tmp/k.cubin attention_decode_kernelI13__nv_bfloat16Li4ELi16E kernels/attention.cu

nvdisasm comes with the CUDA toolkit on the GPU machine (the one here may lack it: copy it back
from there, --nvdisasm PATH). Runs shorter than --min-bytes fold into the run before them.
"""
import argparse
import bisect
import re
import subprocess


def function_starts(source):
    """(line, name) of each top-level function and each `auto name = [` lambda of the source."""
    starts = []
    for i, line in enumerate(open(source).read().split("\n"), 1):
        line = re.sub(r"__launch_bounds__\([^)]*\)", "", line)
        m = re.match(r"^(?:template <[^>]*>\s*)?(?:__device__|__global__|__host__|static|inline|constexpr|void|float|int|bool)"
                     r"[^;]*?(\w+)\s*\(", line)
        if m:
            starts.append((i, m.group(1)))
        m = re.match(r"^\s+auto (\w+) = \[", line)
        if m:
            starts.append((i, m.group(1)))
    return sorted(starts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cubin")
    ap.add_argument("kernel", help="a substring of the kernel's mangled name")
    ap.add_argument("source", help="the source file whose functions name the runs")
    ap.add_argument("--nvdisasm", default="nvdisasm")
    ap.add_argument("--min-bytes", type=int, default=384)
    args = ap.parse_args()

    starts = function_starts(args.source)
    lines = [s[0] for s in starts]
    src_name = args.source.split("/")[-1]

    def name_of(file, line):
        if file != src_name:
            return file.split(".")[0]
        k = bisect.bisect_right(lines, line) - 1
        return f"{starts[k][1]}:{starts[k][0]}" if k >= 0 else "?"

    sass = subprocess.run([args.nvdisasm, "-g", args.cubin], capture_output=True, text=True, check=True).stdout
    section, current, runs = None, "?", []  # runs: [name, address, instructions]
    for text in sass.split("\n"):
        m = re.match(r"\s*\.section\s+\.text\.(\S+?),", text)
        if m:
            section = m.group(1)
            continue
        if section is None or args.kernel not in section:
            continue
        m = re.search(r'//## File "([^"]+)", line (\d+)', text)
        if m:
            current = name_of(m.group(1).split("/")[-1], int(m.group(2)))
            continue
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/", text)
        if m:
            if runs and runs[-1][0] == current:
                runs[-1][2] += 1
            else:
                runs.append([current, int(m.group(1), 16), 1])
    if not runs:
        raise SystemExit(f"sass_map: no kernel matching {args.kernel!r} in {args.cubin}")

    folded = []
    for name, address, n in runs:
        if folded and (folded[-1][0] == name or n * 16 < args.min_bytes // 4):
            folded[-1][2] += n
        else:
            folded.append([name, address, n])
    print("address  bytes  function:line")
    for name, address, n in folded:
        if n * 16 >= args.min_bytes:
            print(f"{address:7x} {n * 16:6d}  {name}")
    totals = {}
    for name, _, n in runs:
        totals[name] = totals.get(name, 0) + n * 16
    print(f"total {sum(totals.values())} bytes; largest:")
    for name, b in sorted(totals.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {b:6d}  {name}")


if __name__ == "__main__":
    main()
