#!/usr/bin/env bash
# Run HERE before a `run` call: builds the CUDA build (sm_90 only), strips the binaries, bundles
# the shared libraries the GPU machine lacks (scripts/device_bundle.sh), and copies the reference
# models (without tokenizers, to stay under the 64 MiB transfer limit) into .device-data/.
# Then: run(command="bash scripts/gpu_all.sh", carry=[<the paths this prints>]).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-cuda}
cmake -S . -B "$build" -G Ninja -DLLAMA_TP_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
ninja -C "$build" -j "${JOBS:-2}" llama_tp test_kernels test_runtime test_parallel test_launch >/dev/null
rm -rf .device-data/bin && mkdir -p .device-data/bin/tests
cp "$build/llama_tp" .device-data/bin/
for t in test_kernels test_runtime test_parallel test_launch; do cp "$build/tests/$t" .device-data/bin/tests/; done
strip .device-data/bin/llama_tp .device-data/bin/tests/*
bash scripts/device_bundle.sh .device-data/bin >/dev/null
src=${LLAMA_TP_SHARED:-../shared}/models
rm -rf .device-data/models && cp -r "$src" .device-data/models && chmod -R u+w .device-data/models
find .device-data/models \( -name 'tokenizer*.json' -o -name '*.gguf' \) -delete
du -sh .device-data/bin .device-data/models
# Packed: the transfer limit is 64 MiB and xz shrinks the binaries about fourfold.
# Only what the GPU scripts read (the build, the models, the kernel bench if built): variants
# (scripts/device_variant.sh) and other leftovers would push it over the limit.
mkdir -p .device-pack
packed=(.device-data/bin .device-data/models)
[[ -d .device-data/kbench ]] && packed+=(.device-data/kbench)
tar cJf .device-pack/d.tar.xz "${packed[@]}"
du -sh .device-pack/d.tar.xz
echo "carry: .device-pack   command: tar xJf .device-pack/d.tar.xz && BUILD=.device-data/bin bash scripts/gpu_all.sh"
