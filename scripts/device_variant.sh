#!/usr/bin/env bash
# Run HERE, after scripts/device_prepare.sh: a variant of the CUDA build for a same-call A/B on the
# GPU machine. One kernel source is compiled again with extra nvcc flags (e.g. -DSOME_SWITCH, or
# -Xptxas -O1), put in place of its object in a copy of the library, and llama_tp and test_kernels
# are linked against that copy into .device-data/v_<name>/ (stripped; the shared libraries are the
# ones in .device-data/bin/devlib). The build itself is left as it was.
#   usage: scripts/device_variant.sh <name> <source> "<compiler flags>"   (BUILD, default build-cuda;
#          TARGETS, default "llama_tp tests/test_kernels": what is linked, e.g. add tests/test_runtime)
# (<source>: any file of the library, e.g. kernels/attention.cu with nvcc flags, or a .cpp; several,
# space-separated in one argument, for a change that spans files: "kernels/gemv.cu runtime/model.cpp".)
# Then in a script run on the GPU machine: .device-data/v_<name>/llama_tp bench ... beside
# .device-data/bin/llama_tp, and .device-data/v_<name>/test_kernels --gtest_filter='*Cuda*'.
# scripts/device_ab.sh (VARIANTS="<name> ...") runs the bench comparison in interleaved rounds.
set -euo pipefail
[[ $# -eq 3 ]] || { echo "usage: $0 <name> <source> \"<compiler flags>\"" >&2; exit 2; }
name=$1 source=$2 flags=$3
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/${BUILD:-build-cuda}
[[ -f $build/libllama_tp_lib.a ]] || { echo "device_variant: no $build/libllama_tp_lib.a (run scripts/device_prepare.sh first)" >&2; exit 1; }
for src in $source; do [[ -f $root/$src ]] || { echo "device_variant: no source $src" >&2; exit 1; }; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$build/libllama_tp_lib.a" "$work/lib.a"
for src in $source; do  # each source's own compile command from the build, with the flags added
  object=$(basename "$src").o
  compile=$(ninja -C "$build" -t commands llama_tp | grep -E -- "-c $root/$src( |\$)" | head -1 || true)
  [[ -n $compile ]] || { echo "device_variant: $src is not compiled into llama_tp" >&2; exit 1; }
  # (Without -MD/-MF, so that the build's dependency files stay as they are.)
  compile=$(sed -E "s# -MD -MT [^ ]+ -MF [^ ]+##; s# -o [^ ]+# -o $work/$object#" <<<"${compile/ -c / $flags -c }")
  (cd "$build" && eval "$compile")
  ar r "$work/lib.a" "$work/$object"  # replaces the member of the same name
done

out=$root/.device-data/v_$name
mkdir -p "$out"
targets=${TARGETS:-llama_tp tests/test_kernels}
for target in $targets; do
  link=$(ninja -C "$build" -t commands "$target" | tail -1)
  link=${link//libllama_tp_lib.a/$work/lib.a}
  (cd "$build" && eval "$(sed -E "s# -o [^ ]+ # -o $out/$(basename "$target") #" <<<"$link")")
done
for target in $targets; do strip "$out/$(basename "$target")"; done
echo "device_variant: $out ($targets) with $source built with: $flags"
