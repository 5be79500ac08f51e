#!/usr/bin/env bash
# Run HERE (the build machine), after building: copies the shared libraries that the test
# binaries and llama_tp need but the GPU machine lacks (Boost.ProgramOptions, PCRE2,
# sentencepiece, protobuf-lite, gtest if shared, ...) into <build>/devlib, so that `run` can
# carry the build folder and scripts/gpu_check.sh can point LD_LIBRARY_PATH at it.
# The C/C++ runtime, CUDA (driver, cudart, cuBLAS), NCCL and MPI come from the GPU machine.
#   usage: scripts/device_bundle.sh [build-dir]   (default build-cuda)
set -euo pipefail
build=${1:-build-cuda}
dest="$build/devlib"
mkdir -p "$dest"

bins=()
for b in "$build/llama_tp" "$build"/tests/test_*; do
  [[ -x "$b" && -f "$b" ]] && bins+=("$b")
done
[[ ${#bins[@]} -gt 0 ]] || { echo "device_bundle: no binaries under $build (build first)" >&2; exit 1; }

# Provided by the GPU machine's own system, CUDA toolkit, driver or MPI installation.
system='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|libatomic|libcuda|libcudart|libcublas|libcublasLt|libnvidia-.*|libnccl|libmpi|libopen-pal|libopen-rte|libhwloc|libevent.*|libpmix|libucp|libucs|libuct|libz|libudev)\.so'

copied=0
for b in "${bins[@]}"; do
  while read -r name _ path _; do
    [[ -n "${path:-}" && -f "$path" ]] || continue
    [[ "$name" =~ $system ]] && continue
    if [[ ! -f "$dest/$name" ]]; then
      cp -L "$path" "$dest/$name"
      echo "device_bundle: $name <- $path"
      copied=$((copied + 1))
    fi
  done < <(ldd "$b" | grep '=> /')
done
echo "device_bundle: $copied new libraries in $dest ($(du -sh "$dest" | cut -f1)) for ${#bins[@]} binaries"
