#include "runtime/backend_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/argmax_cuda.h"
#include "kernels/attention_cuda.h"
#include "kernels/attention_prefill_cuda.h"
#include "kernels/convert_cuda.h"
#include "kernels/embedding_cuda.h"
#include "kernels/matmul_cuda.h"
#include "kernels/rmsnorm_cuda.h"
#include "kernels/rope_cuda.h"
#include "kernels/swiglu_cuda.h"
#include "runtime/cuda_check.h"

namespace llama_tp {
namespace {

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Every tensor an op touches must be on the GPU, and activations float32.
void expect(const Tensor& t, const char* op, const char* what, bool float32 = true) {
  LLAMA_TP_CHECK(t.defined(), op, ": ", what, " is an empty tensor");
  LLAMA_TP_CHECK(t.device() == Device::CUDA, op, ": ", what, " is on the ", device_name(t.device()),
                 ", the CUDA backend needs it on the GPU");
  LLAMA_TP_CHECK(!float32 || t.dtype() == DType::F32, op, ": ", what, " must be f32, not ", dtype_name(t.dtype()));
}

// Rows of a [rows, width] activation (any leading shape).
int rows_of(const Tensor& t) { return t.ndim() == 0 || t.dim(-1) == 0 ? 0 : int(t.numel() / t.dim(-1)); }

}  // namespace

CudaBackend::CudaBackend(DType compute_dtype, int device_index)
    : compute_dtype_(compute_dtype), device_index_(device_index) {
  LLAMA_TP_CHECK(is_float(compute_dtype), "the CUDA backend computes in f32, f16 or bf16, not ",
                 dtype_name(compute_dtype));
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    n = 0;
  }
  LLAMA_TP_CHECK(device_index >= 0 && device_index < n, "CUDA device ", device_index, " does not exist (",
                 n, " visible; check CUDA_VISIBLE_DEVICES and the number of ranks per node)");
  CUDA_CHECK(cudaSetDevice(device_index));
  cudaStream_t s;
  CUDA_CHECK(cudaStreamCreate(&s));
  stream_ = s;
  cublasHandle_t h;
  CUBLAS_CHECK(cublasCreate(&h));
  cublas_ = h;
  CUBLAS_CHECK(cublasSetStream(h, s));
}

CudaBackend::~CudaBackend() {
  // No throwing from a destructor: errors here only leak.
  if (workspace_) cudaFreeAsync(workspace_, stream_);
  if (stream_) cudaStreamSynchronize(stream_);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

std::string CudaBackend::name() const {
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device_index_));
  return detail::concat("cuda:", device_index_, " (", prop.name, ", ", dtype_name(compute_dtype_), ")");
}

void* CudaBackend::stream() const { return stream_; }

void CudaBackend::synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* CudaBackend::workspace(size_t nbytes) {
  if (nbytes > workspace_bytes_) {
    // Stream-ordered: kernels queued before still read the old buffer, so it is freed in order.
    if (workspace_) CUDA_CHECK(cudaFreeAsync(workspace_, stream_));
    workspace_ = nullptr;
    workspace_bytes_ = 0;
    CUDA_CHECK(cudaMallocAsync(&workspace_, nbytes, stream_));
    workspace_bytes_ = nbytes;
  }
  return workspace_;
}

Tensor CudaBackend::alloc(std::vector<int64_t> shape, DType dtype) {
  return Tensor::empty(std::move(shape), dtype, Device::CUDA);
}

Tensor CudaBackend::upload_weight(const Tensor& src) {
  LLAMA_TP_CHECK(src.defined(), "upload_weight: empty tensor");
  LLAMA_TP_CHECK(is_float(src.dtype()), "upload_weight: weights must be f32, f16 or bf16, not ",
                 dtype_name(src.dtype()));
  Tensor out = Tensor::empty(src.shape(), compute_dtype_, Device::CUDA);
  if (src.dtype() == compute_dtype_) {
    out.copy_from(src);
    return out;
  }
  // Convert on the GPU: the host only copies the checkpoint's bytes.
  Tensor staged = src.device() == Device::CUDA ? src : src.to(Device::CUDA);
  kernels::convert_cuda(out.raw(), compute_dtype_, staged.raw(), src.dtype(), size_t(src.numel()), stream_);
  synchronize();  // `staged` is freed on return
  return out;
}

void CudaBackend::embedding(Tensor& out, const Tensor& table, const Tensor& ids) {
  expect(out, "embedding", "out");
  expect(table, "embedding", "table", false);
  expect(ids, "embedding", "ids", false);
  LLAMA_TP_CHECK(ids.dtype() == DType::I32, "embedding: ids must be i32, not ", dtype_name(ids.dtype()));
  LLAMA_TP_CHECK(table.ndim() == 2 && out.numel() == ids.numel() * table.dim(1), "embedding: out ",
                 out.shape_string(), " does not fit ", ids.numel(), " tokens of table ", table.shape_string());
  kernels::embedding_cuda(out.data<float>(), table.raw(), table.dtype(), ids.data<int32_t>(), int(ids.numel()),
                          int(table.dim(0)), int(table.dim(1)), stream_);
}

void CudaBackend::rmsnorm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  expect(out, "rmsnorm", "out");
  expect(x, "rmsnorm", "x");
  expect(weight, "rmsnorm", "weight", false);
  LLAMA_TP_CHECK(out.numel() == x.numel() && weight.numel() == x.dim(-1), "rmsnorm: x ", x.shape_string(),
                 ", weight ", weight.shape_string(), ", out ", out.shape_string(), " disagree");
  kernels::rmsnorm_cuda(out.data<float>(), x.data<float>(), weight.raw(), weight.dtype(), rows_of(x),
                        int(x.dim(-1)), eps, stream_);
}

void CudaBackend::add_rmsnorm(Tensor& out, Tensor& x, const Tensor& residual, const Tensor& weight, float eps) {
  expect(out, "add_rmsnorm", "out");
  expect(x, "add_rmsnorm", "x");
  expect(residual, "add_rmsnorm", "residual");
  expect(weight, "add_rmsnorm", "weight", false);
  LLAMA_TP_CHECK(out.numel() == x.numel() && residual.numel() == x.numel() && weight.numel() == x.dim(-1),
                 "add_rmsnorm: x ", x.shape_string(), ", residual ", residual.shape_string(), ", weight ",
                 weight.shape_string(), ", out ", out.shape_string(), " disagree");
  LLAMA_TP_CHECK(out.raw() != x.raw(), "add_rmsnorm: out must not alias x");
  kernels::add_rmsnorm_cuda(out.data<float>(), x.data<float>(), residual.data<float>(), weight.raw(),
                            weight.dtype(), rows_of(x), int(x.dim(-1)), eps, stream_);
}

void CudaBackend::linear(Tensor& out, const Tensor& x, const Tensor& w) { linear_with(out, x, w, LinearAlgo::Auto); }

void CudaBackend::linear_with(Tensor& out, const Tensor& x, const Tensor& w, LinearAlgo algo) {
  expect(out, "linear", "out");
  expect(x, "linear", "x");
  expect(w, "linear", "weight", false);
  LLAMA_TP_CHECK(w.ndim() == 2 && x.dim(-1) == w.dim(1) && out.dim(-1) == w.dim(0) && rows_of(out) == rows_of(x),
                 "linear: x ", x.shape_string(), " · w ", w.shape_string(), "ᵀ does not fit out ", out.shape_string());
  const int m = rows_of(x), n = int(w.dim(0)), k = int(w.dim(1));
  if (algo == LinearAlgo::Auto) algo = m == 1 ? LinearAlgo::Gemv : LinearAlgo::Cublas;
  if (algo == LinearAlgo::Gemv) {
    LLAMA_TP_CHECK(m == 1, "linear: the GEMV kernel takes one token, not ", m);
    kernels::gemv_cuda(out.data<float>(), x.data<float>(), w.raw(), w.dtype(), n, k, stream_);
    return;
  }
  const void* xw = x.raw();
  if (w.dtype() != DType::F32) {
    void* buf = workspace(size_t(x.numel()) * dtype_size(w.dtype()));
    kernels::convert_cuda(buf, w.dtype(), x.raw(), DType::F32, size_t(x.numel()), stream_);
    xw = buf;
  }
  kernels::gemm_cublas(cublas_, out.data<float>(), xw, w.raw(), w.dtype(), m, n, k);
}

void CudaBackend::rope_qk(Tensor& qkv, const AttentionShape& shape, int pos0, const Tensor& inv_freq) {
  expect(qkv, "rope_qk", "qkv");
  LLAMA_TP_CHECK(inv_freq.defined() && inv_freq.dtype() == DType::F32 && inv_freq.numel() == shape.head_dim / 2,
                 "rope_qk: inv_freq must be ", shape.head_dim / 2, " f32 values, not ", dtype_name(inv_freq.dtype()),
                 inv_freq.shape_string());
  LLAMA_TP_CHECK(qkv.dim(-1) == shape.qkv_width(), "rope_qk: qkv rows of ", qkv.dim(-1), " values, expected ",
                 shape.qkv_width());
  const float* freq = inv_freq.data<float>();
  if (inv_freq.device() == Device::CPU) {
    // A host table is uploaded once; rope_qk is then free of host copies.
    std::vector<float> host(freq, freq + inv_freq.numel());
    if (host != inv_freq_host_) {
      inv_freq_device_ = inv_freq.to(Device::CUDA);
      inv_freq_host_ = std::move(host);
    }
    freq = inv_freq_device_.data<float>();
  }
  kernels::rope_qk_cuda(qkv.data<float>(), rows_of(qkv), shape.n_heads, shape.n_kv_heads, shape.head_dim,
                        int(qkv.dim(-1)), pos0, freq, stream_);
}

void CudaBackend::kv_append(Tensor& k_cache, Tensor& v_cache, const Tensor& qkv, const AttentionShape& shape,
                            int pos0) {
  expect(qkv, "kv_append", "qkv");
  expect(k_cache, "kv_append", "k_cache", false);
  expect(v_cache, "kv_append", "v_cache", false);
  const int64_t cache_numel = int64_t(shape.n_kv_heads) * shape.max_seq * shape.head_dim;
  LLAMA_TP_CHECK(k_cache.numel() == cache_numel && v_cache.numel() == cache_numel &&
                     k_cache.dtype() == v_cache.dtype() && qkv.dim(-1) == shape.qkv_width(),
                 "kv_append: caches ", k_cache.shape_string(), "/", v_cache.shape_string(), " or qkv ",
                 qkv.shape_string(), " do not match the attention shape");
  const int n_tokens = rows_of(qkv);
  LLAMA_TP_CHECK(pos0 >= 0 && pos0 + n_tokens <= shape.max_seq, "kv_append: positions ", pos0, "..",
                 pos0 + n_tokens, " do not fit the KV cache of ", shape.max_seq, " positions (raise --ctx-size)");
  kernels::kv_append_cuda(k_cache.raw(), v_cache.raw(), k_cache.dtype(), qkv.data<float>(), int(qkv.dim(-1)),
                          n_tokens, shape.n_heads, shape.n_kv_heads, shape.head_dim, pos0, shape.max_seq, stream_);
}

void CudaBackend::attention(Tensor& out, const Tensor& qkv, const Tensor& k_cache, const Tensor& v_cache,
                            const AttentionShape& shape, int pos0) {
  expect(out, "attention", "out");
  expect(qkv, "attention", "qkv");
  expect(k_cache, "attention", "k_cache", false);
  expect(v_cache, "attention", "v_cache", false);
  const int n_tokens = rows_of(qkv);
  const int64_t cache_numel = int64_t(shape.n_kv_heads) * shape.max_seq * shape.head_dim;
  LLAMA_TP_CHECK(k_cache.numel() == cache_numel && v_cache.numel() == cache_numel &&
                     k_cache.dtype() == v_cache.dtype() && qkv.dim(-1) == shape.qkv_width() &&
                     out.numel() == int64_t(n_tokens) * shape.n_heads * shape.head_dim,
                 "attention: out ", out.shape_string(), ", qkv ", qkv.shape_string(), " or caches ",
                 k_cache.shape_string(), " do not match the attention shape");
  LLAMA_TP_CHECK(pos0 >= 0 && pos0 + n_tokens <= shape.max_seq, "attention: positions ", pos0, "..",
                 pos0 + n_tokens, " exceed the KV cache of ", shape.max_seq, " positions");
  kernels::AttentionArgs a{out.data<float>(), qkv.data<float>(), int(qkv.dim(-1)), k_cache.raw(), v_cache.raw(),
                           k_cache.dtype(), n_tokens, shape.n_heads, shape.n_kv_heads, shape.head_dim, pos0,
                           shape.max_seq};
  if (kernels::attention_prefill_applies(a)) {  // many query tokens: tensor-core prefill kernels
    const size_t pws = kernels::attention_prefill_workspace_bytes(a);
    kernels::attention_prefill_cuda(a, kernels::PrefillAttentionAlgo::Auto, cublas_, pws ? workspace(pws) : nullptr,
                                    pws, stream_);
    return;
  }
  const size_t ws = kernels::attention_workspace_bytes(a);
  kernels::attention_cuda(a, ws ? workspace(ws) : nullptr, stream_);
}

void CudaBackend::swiglu(Tensor& out, const Tensor& gate_up) {
  expect(out, "swiglu", "out");
  expect(gate_up, "swiglu", "gate_up");
  const int ffn = int(out.dim(-1));
  LLAMA_TP_CHECK(gate_up.dim(-1) == 2 * ffn && rows_of(gate_up) == rows_of(out), "swiglu: gate_up ",
                 gate_up.shape_string(), " does not fit out ", out.shape_string());
  kernels::swiglu_cuda(out.data<float>(), gate_up.data<float>(), rows_of(out), ffn, stream_);
}

void CudaBackend::add(Tensor& x, const Tensor& y) {
  expect(x, "add", "x");
  expect(y, "add", "y");
  LLAMA_TP_CHECK(x.numel() == y.numel(), "add: ", x.shape_string(), " + ", y.shape_string());
  kernels::add_cuda(x.data<float>(), y.data<float>(), size_t(x.numel()), stream_);
}

void CudaBackend::argmax(Tensor& ids, const Tensor& logits) {
  expect(ids, "argmax", "ids", false);
  expect(logits, "argmax", "logits");
  LLAMA_TP_CHECK(ids.dtype() == DType::I32 && ids.numel() == rows_of(logits), "argmax: ids must be i32 [",
                 rows_of(logits), "], not ", dtype_name(ids.dtype()), ids.shape_string());
  kernels::argmax_cuda(ids.data<int32_t>(), logits.data<float>(), rows_of(logits), int(logits.dim(-1)), stream_);
}

void CudaBackend::cast(Tensor& out, const Tensor& in) {
  expect(out, "cast", "out", false);
  expect(in, "cast", "in", false);
  LLAMA_TP_CHECK(out.numel() == in.numel(), "cast: ", in.shape_string(), " into ", out.shape_string());
  kernels::convert_cuda(out.raw(), out.dtype(), in.raw(), in.dtype(), size_t(in.numel()), stream_);
}

std::unique_ptr<Backend> make_cuda_backend(DType compute_dtype, int device_index) {
  return std::make_unique<CudaBackend>(compute_dtype, device_index);
}

std::pair<size_t, size_t> CudaBackend::memory_info() {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return {free_b, total_b};
}

}  // namespace llama_tp
