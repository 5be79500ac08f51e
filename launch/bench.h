#pragma once
#include "launch/engine.h"

namespace llama_tp {
// `llama_tp bench`, in the manner of llama-bench: prefill throughput (ppN), decode throughput
// (tgN, optionally at a context depth dD), repetitions as mean ± stddev, and for decode the
// achieved memory traffic and its share of the bandwidth limit.
void run_bench(Engine& e, const Options& o);

// Bytes one rank reads from memory for one decode token at context depth `depth`: every weight
// but the embedding table (a lookup reads one row), plus the K and V cache read by attention.
double decode_bytes_per_token(const Model& model, int depth);
}  // namespace llama_tp
