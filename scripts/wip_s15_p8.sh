set -uo pipefail
B=.device-data/bin V=.device-data/v_P8
export LD_LIBRARY_PATH="$PWD/$B/devlib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
export LLAMA_TP_SHARED=$PWD/.device-data
bench() { local b=$1; shift; echo "## $b $*"; timeout 100 $b/llama_tp bench "$@" 2>&1 | grep -E "^\||error" | grep -v "^|---" | grep -v "^| model" | cut -c60-200; }
tests() { echo "test $*"; timeout 120 "$@" 2>&1 | grep -E "^\[  FAILED|PASSED|FAILED  \]|Failure|Which is|error" | head -12; }
tests $V/test_kernels --gtest_filter='*Cuda*'
tests $V/test_runtime --gtest_filter='*Cuda*:*Int8*'
for i in 1 2; do bench $B -m llama3-8b -p 0 -n 128 -r 2 --quant int8; bench $V -m llama3-8b -p 0 -n 128 -r 2 --quant int8; done
bench $B -m llama3.2-1b -p 0 -n 128 -r 3 --quant int8; bench $V -m llama3.2-1b -p 0 -n 128 -r 3 --quant int8
LLAMA_TP_TIMELINE=1 timeout 100 $V/llama_tp bench -m llama3-8b --quant int8 -p 0 -n 64 -r 1 2>&1 | grep -E "^\| (gemv|att)" | cut -c1-150
