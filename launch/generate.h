#pragma once
#include "launch/engine.h"

namespace llama_tp {
// `llama_tp run`: prompt -> tokens (rank 0), prefill, then sample/decode until a stop; streams
// text to stdout (or one JSON object with --json). Other ranks follow in DistributedModel::serve.
void run_generation(Engine& e, const Options& o);
// `llama_tp tokenize` / `detokenize`: no model weights needed.
void run_tokenize(const Options& o);
void run_detokenize(const Options& o);
}  // namespace llama_tp
