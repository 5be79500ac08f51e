#!/usr/bin/env bash
# Builds llama_tp and runs every test suite (unit tests, reference models, mpirun end-to-end
# runs). Reads ../shared (reference models and tokenizer cases) beside the checkout, or
# $LLAMA_TP_SHARED. CUDA tests skip where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${JOBS:-2}"
