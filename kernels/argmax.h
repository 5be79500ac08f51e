#pragma once

namespace llama_tp::kernels {
// Index of the largest of n values (the first one on ties).
int argmax_cpu(const float* x, int n);
}  // namespace llama_tp::kernels
