#pragma once

namespace llama_tp::kernels {
// out[m, n] = sum_k x[m, k] * w[n, k]: a linear layer with weights stored [out_features,
// in_features] as Hugging Face does. x is [m, k], out is [m, n], all row-major float32.
void matmul_cpu(float* out, const float* x, const float* w, int m, int n, int k);
}  // namespace llama_tp::kernels
