// CudaBackend's int8 weight-only path (runtime/linear_weight.h): quantizing a shard on the GPU
// at load time, and the linear layer on int8 weights (GEMV for one token, dequantized tiles and
// cuBLAS for prompts). Kept apart from backend_cuda.cu: the float path does not depend on it.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/convert_cuda.h"
#include "kernels/gemv_cuda.h"
#include "kernels/matmul_int8_cuda.h"
#include "kernels/quantize_cuda.h"
#include "runtime/backend_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp {
namespace {

// Prefill dequantizes at most this many bytes of weights at a time (a bound on the workspace).
constexpr size_t kDequantTileBytes = size_t(64) << 20;

void expect_on_gpu(const Tensor& t, const char* what, bool float32) {
  LLAMA_TP_CHECK(t.defined(), "linear: ", what, " is an empty tensor");
  LLAMA_TP_CHECK(t.device() == Device::CUDA, "linear: ", what, " is on the ", device_name(t.device()),
                 ", the CUDA backend needs it on the GPU");
  LLAMA_TP_CHECK(!float32 || t.dtype() == DType::F32, "linear: ", what, " must be f32, not ", dtype_name(t.dtype()));
}

int rows_of(const Tensor& t) { return t.ndim() == 0 || t.dim(-1) == 0 ? 0 : int(t.numel() / t.dim(-1)); }

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

LinearWeight CudaBackend::upload_linear(const Tensor& src, const QuantSpec& quant) {
  if (!quant.int8) return LinearWeight(upload_weight(src));
  LLAMA_TP_CHECK(src.defined() && src.ndim() == 2, "upload_linear: int8 weights must be matrices, not ",
                 src.shape_string());
  LLAMA_TP_CHECK(src.dtype() == DType::F32 || src.dtype() == DType::F16 || src.dtype() == DType::BF16,
                 "upload_linear: weights must be f32, f16 or bf16, not ", dtype_name(src.dtype()));
  const int64_t n = src.dim(0), k = src.dim(1), group = quant.group_for(k);
  // The host copies the checkpoint's bytes once; the GPU does the arithmetic.
  Tensor staged = src.device() == Device::CUDA ? src : src.to(Device::CUDA);
  Tensor q = Tensor::empty({n, k}, DType::I8, Device::CUDA);
  Tensor scales = Tensor::empty({n, quant_groups(k, group)}, kernels::kQuantScaleDType, Device::CUDA);
  kernels::quantize_int8_cuda(q.data<int8_t>(), scales.data<kernels::QuantScale>(), staged.raw(), src.dtype(), n, k, group, stream_);
  synchronize();  // `staged` is freed on return
  return LinearWeight(std::move(q), std::move(scales), int(group));
}

void CudaBackend::linear(Tensor& out, const Tensor& x, const LinearWeight& w) {
  linear_with(out, x, w, LinearAlgo::Auto);
}

void CudaBackend::linear_with(Tensor& out, const Tensor& x, const LinearWeight& w, LinearAlgo algo) {
  if (!w.quantized()) return linear_with(out, x, w.values, algo);
  expect_on_gpu(out, "out", true);
  expect_on_gpu(x, "x", true);
  expect_on_gpu(w.values, "int8 weight", false);
  expect_on_gpu(w.scales, "int8 weight scales", false);
  LLAMA_TP_CHECK(w.dtype() == DType::I8 && w.scales.dtype() == kernels::kQuantScaleDType && w.ndim() == 2 &&
                     x.dim(-1) == w.dim(1) && out.dim(-1) == w.dim(0) &&
                     rows_of(out) == rows_of(x) && w.scales.numel() == w.dim(0) * quant_groups(w.dim(1), w.group),
                 "linear: x ", x.shape_string(), " · w ", w.shape_string(), " (", w.format(), ")ᵀ does not fit out ",
                 out.shape_string());
  const int m = rows_of(x), n = int(w.dim(0)), k = int(w.dim(1));
  if (algo == LinearAlgo::Auto) algo = m == 1 ? LinearAlgo::Gemv : LinearAlgo::Cublas;
  if (algo == LinearAlgo::Gemv) {
    LLAMA_TP_CHECK(m == 1, "linear: the int8 GEMV kernel takes one token, not ", m);
    kernels::gemv_int8_cuda(out.data<float>(), x.data<float>(), w.values.data<int8_t>(), w.scales.data<kernels::QuantScale>(), n, k,
                            w.group, stream_);
    return;
  }
  if (m == 0 || n == 0) return;
  // Workspace: x in the compute dtype (unless f32), then one tile of dequantized weight rows.
  const DType t = compute_dtype_;
  const size_t elem = dtype_size(t);
  const size_t x_bytes = t == DType::F32 ? 0 : round_up(size_t(m) * k * elem, 256);
  const int tile_rows = int(std::clamp<size_t>(kDequantTileBytes / (size_t(k) * elem), 1, size_t(n)));
  char* ws = static_cast<char*>(workspace(x_bytes + size_t(tile_rows) * k * elem));
  const void* xw = x.raw();
  if (t != DType::F32) {
    kernels::convert_cuda(ws, t, x.raw(), DType::F32, size_t(x.numel()), stream_);
    xw = ws;
  }
  kernels::gemm_int8_dequant_cublas(cublas_, out.data<float>(), xw, t, w.values.data<int8_t>(), w.scales.data<kernels::QuantScale>(),
                                    m, n, k, w.group, ws + x_bytes, tile_rows, stream_);
}

}  // namespace llama_tp
