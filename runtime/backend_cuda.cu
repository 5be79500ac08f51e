#include "runtime/backend_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/argmax_cuda.h"
#include "kernels/attention_cuda.h"
#include "kernels/attention_prefill_cuda.h"
#include "kernels/common_cuda.h"
#include "kernels/convert_cuda.h"
#include "kernels/dummy_fill_cuda.h"
#include "kernels/embedding_cuda.h"
#include "kernels/gemv_cuda.h"
#include "kernels/matmul_cuda.h"
#include "kernels/rmsnorm_cuda.h"
#include "kernels/rope_cuda.h"
#include "kernels/timeline_cuda.h"
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

// The zeroed counters: attention's (one per kv head), then argmax's (one per row).
constexpr int kAttentionCounters = 4096;
constexpr int kArgmaxRows = 1024;
// Downloads up to this size go through pinned memory (asynchronous); larger ones (all-position
// logits of a long prompt) through pageable memory.
constexpr size_t kMaxPinnedDownload = size_t(64) << 20;

struct CudaGraph final : Backend::Graph {
  cudaGraphExec_t exec = nullptr;
  uint64_t workspace_epoch = 0;
  ~CudaGraph() override {
    if (exec) cudaGraphExecDestroy(exec);  // a launch still in flight completes first
  }
};

}  // namespace

CudaBackend::CudaBackend(DType compute_dtype, int device_index, std::optional<DType> kv_dtype,
                         bool precise_activations)
    : compute_dtype_(compute_dtype),
      kv_dtype_(kv_dtype.value_or(compute_dtype)),
      precise_activations_(precise_activations),
      device_index_(device_index) {
  LLAMA_TP_CHECK(is_float(compute_dtype), "the CUDA backend computes in f32, f16 or bf16, not ",
                 dtype_name(compute_dtype));
  LLAMA_TP_CHECK(is_float(kv_dtype_), "the KV cache holds f32, f16 or bf16, not ", dtype_name(kv_dtype_));
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

  kernels::timeline_init();  // LLAMA_TP_TIMELINE=1 only
  CUDA_CHECK(cudaMalloc(&step_device_, 2 * sizeof(int32_t)));
  CUDA_CHECK(cudaMallocHost(&step_host_, 2 * sizeof(int32_t)));
  cudaEvent_t e;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  step_copied_ = e;
  const size_t counter_bytes = sizeof(unsigned) * (kAttentionCounters + kArgmaxRows);
  CUDA_CHECK(cudaMalloc(&counters_, counter_bytes));
  CUDA_CHECK(cudaMemsetAsync(counters_, 0, counter_bytes, s));
  CUDA_CHECK(cudaMemsetAsync(step_device_, 0, 2 * sizeof(int32_t), s));
  CUDA_CHECK(cudaMalloc(&argmax_scratch_, kernels::argmax_scratch_bytes(kArgmaxRows)));
  CUDA_CHECK(cudaStreamSynchronize(s));
  kernels::sm_count();  // asked once here, not first while a graph is being recorded
}

CudaBackend::~CudaBackend() {
  // No throwing from a destructor: errors here only leak.
  abort_capture();
  if (workspace_) cudaFreeAsync(workspace_, stream_);
  if (stream_) cudaStreamSynchronize(stream_);
  if (cublas_) cublasDestroy(cublas_);
  if (step_copied_) cudaEventDestroy(step_copied_);
  cudaFree(step_device_);
  cudaFree(counters_);
  cudaFree(argmax_scratch_);
  cudaFreeHost(step_host_);
  cudaFreeHost(host_buffer_);
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
    LLAMA_TP_CHECK(!capturing_, "the CUDA workspace would grow to ", nbytes, " bytes while a graph is being "
                   "recorded (run the step once unrecorded first)");
    ++workspace_epoch_;  // recorded graphs use the old buffer
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

Tensor CudaBackend::make_dummy_block(const kernels::DummyFill& fill, const std::vector<int64_t>& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype, Device::CUDA);
  const int64_t rows = shape.size() == 1 ? 1 : shape.at(0), cols = shape.back();
  kernels::dummy_fill_cuda(t.raw(), dtype, fill, rows, cols, stream_);
  return t;
}

Tensor CudaBackend::upload_as(const Tensor& src, DType dtype) {
  LLAMA_TP_CHECK(src.defined(), "upload_weight: empty tensor");
  LLAMA_TP_CHECK(is_float(src.dtype()), "upload_weight: weights must be f32, f16 or bf16, not ",
                 dtype_name(src.dtype()));
  if (src.device() == Device::CUDA && src.dtype() == dtype) return src;  // made here (dummy weights)
  Tensor out = Tensor::empty(src.shape(), dtype, Device::CUDA);
  if (src.dtype() == dtype) {
    out.copy_from(src);
    return out;
  }
  // Convert on the GPU: the host only copies the checkpoint's bytes.
  Tensor staged = src.device() == Device::CUDA ? src : src.to(Device::CUDA);
  kernels::convert_cuda(out.raw(), dtype, staged.raw(), src.dtype(), size_t(src.numel()), stream_);
  synchronize();  // `staged` is freed on return
  return out;
}

Tensor CudaBackend::upload_weight(const Tensor& src) { return upload_as(src, compute_dtype_); }
Tensor CudaBackend::upload_norm(const Tensor& src) { return upload_as(src, DType::F32); }

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

void CudaBackend::add_rmsnorm(Tensor& out, Tensor& x_out, const Tensor& x, const Tensor& delta, const Tensor& weight,
                              float eps) {
  expect(out, "add_rmsnorm", "out");
  expect(x_out, "add_rmsnorm", "x_out");
  expect(x, "add_rmsnorm", "x");
  expect(delta, "add_rmsnorm", "delta");
  expect(weight, "add_rmsnorm", "weight", false);
  LLAMA_TP_CHECK(out.numel() == x.numel() && delta.numel() == x.numel() && x_out.numel() == x.numel() &&
                     weight.numel() == x.dim(-1),
                 "add_rmsnorm: x ", x.shape_string(), ", delta ", delta.shape_string(), ", weight ",
                 weight.shape_string(), ", out ", out.shape_string(), " disagree");
  LLAMA_TP_CHECK(out.raw() != x.raw() && out.raw() != x_out.raw() && out.raw() != delta.raw(),
                 "add_rmsnorm: out must not alias an input");
  kernels::add_rmsnorm_cuda(out.data<float>(), x_out.data<float>(), x.data<float>(), delta.data<float>(), weight.raw(),
                            weight.dtype(), rows_of(x), int(x.dim(-1)), eps, stream_);
}

bool CudaBackend::fused_gemv_input(const NormedInput& in, const LinearWeight& w, const char* op,
                                   kernels::GemvInput& g) {
  if (rows_of(in.x) != 1 || !kernels::gemv_stages_input(int(in.x.dim(-1)))) return false;
  expect(in.x, op, "x");
  expect(in.weight, op, "norm weight", false);
  expect(w.values, op, "weight", false);
  const int64_t dim = in.x.dim(-1);
  LLAMA_TP_CHECK(in.weight.numel() == dim && w.ndim() == 2 && w.dim(1) == dim, op, ": x ", in.x.shape_string(),
                 ", norm ", in.weight.shape_string(), " and weight ", w.shape_string(), " disagree");
  g.x = in.x.data<float>();
  if (in.delta.defined()) {
    expect(in.delta, op, "delta");
    expect(in.x_out, op, "x_out");
    LLAMA_TP_CHECK(in.delta.numel() == dim && in.x_out.numel() == dim && in.x_out.raw() != in.x.raw() &&
                       in.x_out.raw() != in.delta.raw(),
                   op, ": delta ", in.delta.shape_string(), " or x_out ", in.x_out.shape_string(),
                   " does not fit x (or x_out aliases an input)");
    g.delta = in.delta.data<float>();
    g.x_out = in.x_out.data<float>();
  }
  g.norm = in.weight.raw();
  g.norm_dtype = in.weight.dtype();
  g.eps = in.eps;
  if (w.quantized()) {
    expect(w.scales, op, "int8 scales", false);
    LLAMA_TP_CHECK(w.dtype() == DType::I8 && w.scales.dtype() == kernels::kQuantScaleDType &&
                       w.scales.numel() == w.dim(0) * quant_groups(w.dim(1), w.group),
                   op, ": int8 weight ", w.shape_string(), " and scales ", w.scales.shape_string(), " disagree");
  }
  return true;
}

namespace {
kernels::GemvWeight gemv_weight(const LinearWeight& w) {
  if (w.quantized()) return {w.values.raw(), DType::I8, w.scales.data<kernels::QuantScale>(), w.group};
  return {w.values.raw(), w.dtype()};
}
}  // namespace

void CudaBackend::norm_linear(Tensor& out, const NormedInput& in, const LinearWeight& w) {
  kernels::GemvInput g;
  if (!fused_gemv_input(in, w, "norm_linear", g)) return Backend::norm_linear(out, in, w);
  expect(out, "norm_linear", "out");
  LLAMA_TP_CHECK(out.numel() == w.dim(0), "norm_linear: out ", out.shape_string(), " does not fit weight ",
                 w.shape_string());
  kernels::gemv_cuda(out.data<float>(), g, gemv_weight(w), int(w.dim(0)), int(w.dim(1)), kernels::GemvEpilogue::Store,
                     nullptr, stream_);
}

void CudaBackend::norm_linear_swiglu(Tensor& out, Tensor& gate_up, const NormedInput& in, const LinearWeight& w13) {
  kernels::GemvInput g;
  if (!fused_gemv_input(in, w13, "norm_linear_swiglu", g)) return Backend::norm_linear_swiglu(out, gate_up, in, w13);
  expect(out, "norm_linear_swiglu", "out");
  LLAMA_TP_CHECK(w13.dim(0) == 2 * out.numel(), "norm_linear_swiglu: out ", out.shape_string(), " does not fit w13 ",
                 w13.shape_string());
  kernels::gemv_cuda(out.data<float>(), g, gemv_weight(w13), int(out.numel()), int(w13.dim(1)),
                     kernels::GemvEpilogue::Swiglu, nullptr, stream_);
}

void CudaBackend::norm_linear_rope_kv(Tensor& qkv, Tensor& k_cache, Tensor& v_cache, const AttentionShape& shape,
                                      int pos0, const Tensor& inv_freq, const NormedInput& in,
                                      const LinearWeight& wqkv) {
  kernels::GemvInput g;
  if (!fused_gemv_input(in, wqkv, "norm_linear_rope_kv", g))
    return Backend::norm_linear_rope_kv(qkv, k_cache, v_cache, shape, pos0, inv_freq, in, wqkv);
  const char* op = "norm_linear_rope_kv";
  expect(qkv, op, "qkv");
  LLAMA_TP_CHECK(qkv.numel() == shape.qkv_width() && wqkv.dim(0) == shape.qkv_width() && shape.head_dim % 2 == 0, op,
                 ": qkv ", qkv.shape_string(), " or weight ", wqkv.shape_string(), " do not match the attention shape");
  kernels::GemvRope r;
  r.k_cache = k_cache.raw();
  r.v_cache = v_cache.raw();
  r.cache_dtype = k_cache.dtype();
  r.n_heads = shape.n_heads, r.n_kv_heads = shape.n_kv_heads, r.head_dim = shape.head_dim, r.max_seq = shape.max_seq;
  r.pos_dev = cache_position(k_cache, v_cache, shape, pos0, 1, op);
  r.pos0 = r.pos_dev ? 0 : pos0;
  r.inv_freq = device_inv_freq(inv_freq, shape, op);
  kernels::gemv_cuda(qkv.data<float>(), g, gemv_weight(wqkv), int(wqkv.dim(0)), int(wqkv.dim(1)),
                     kernels::GemvEpilogue::RopeKv, &r, stream_);
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
  if (w.dtype() != DType::F32 && precise_activations_) {
    // x = hi + lo in the weight dtype, one product over the 2m stacked rows, halves summed.
    const size_t in_bytes = (2 * size_t(x.numel()) * dtype_size(w.dtype()) + 255) / 256 * 256;
    char* buf = static_cast<char*>(workspace(in_bytes + 2 * size_t(m) * n * sizeof(float)));
    float* parts = reinterpret_cast<float*>(buf + in_bytes);
    kernels::split_hi_lo_cuda(buf, w.dtype(), x.data<float>(), size_t(x.numel()), stream_);
    kernels::gemm_cublas(cublas_, parts, buf, w.raw(), w.dtype(), 2 * m, n, k);
    kernels::add_halves_cuda(out.data<float>(), parts, size_t(m) * n, stream_);
    return;
  }
  if (w.dtype() != DType::F32) {
    void* buf = workspace(size_t(x.numel()) * dtype_size(w.dtype()));
    kernels::convert_cuda(buf, w.dtype(), x.raw(), DType::F32, size_t(x.numel()), stream_);
    xw = buf;
  }
  kernels::gemm_cublas(cublas_, out.data<float>(), xw, w.raw(), w.dtype(), m, n, k);
}

const int32_t* CudaBackend::step_position(int pos0, int n_tokens, const char* op) const {
  if (pos0 != kStepPos) return nullptr;
  LLAMA_TP_CHECK(n_tokens == 1, op, ": kStepPos is for one-token steps, not ", n_tokens, " tokens");
  return step_device_ + 1;
}

const int32_t* CudaBackend::cache_position(const Tensor& k_cache, const Tensor& v_cache, const AttentionShape& shape,
                                           int pos0, int n_tokens, const char* op) const {
  expect(k_cache, op, "k_cache", false);
  expect(v_cache, op, "v_cache", false);
  const int64_t cache_numel = int64_t(shape.n_kv_heads) * shape.max_seq * shape.head_dim;
  LLAMA_TP_CHECK(k_cache.numel() == cache_numel && v_cache.numel() == cache_numel && k_cache.dtype() == v_cache.dtype(),
                 op, ": caches ", k_cache.shape_string(), "/", v_cache.shape_string(), " do not match the attention shape (",
                 shape.n_kv_heads, " kv heads, ", shape.max_seq, " positions, head_dim ", shape.head_dim, ")");
  const int32_t* pos_dev = step_position(pos0, n_tokens, op);
  LLAMA_TP_CHECK(pos_dev || (pos0 >= 0 && pos0 + n_tokens <= shape.max_seq), op, ": positions ", pos0, "..",
                 pos0 + n_tokens, " do not fit the KV cache of ", shape.max_seq, " positions (raise --ctx-size)");
  return pos_dev;
}

const float* CudaBackend::device_inv_freq(const Tensor& inv_freq, const AttentionShape& shape, const char* op) {
  LLAMA_TP_CHECK(inv_freq.defined() && inv_freq.dtype() == DType::F32 && inv_freq.numel() == shape.head_dim / 2,
                 op, ": inv_freq must be ", shape.head_dim / 2, " f32 values, not ", dtype_name(inv_freq.dtype()),
                 inv_freq.shape_string());
  const float* freq = inv_freq.data<float>();
  if (inv_freq.device() == Device::CUDA) return freq;
  // A host table is uploaded once; rope is then free of host copies.
  std::vector<float> host(freq, freq + inv_freq.numel());
  if (host != inv_freq_host_) {
    LLAMA_TP_CHECK(!capturing_, op, ": a host inv_freq table cannot be uploaded while a graph is being recorded");
    inv_freq_device_ = inv_freq.to(Device::CUDA);
    inv_freq_host_ = std::move(host);
  }
  return inv_freq_device_.data<float>();
}

void CudaBackend::linear_swiglu(Tensor& out, Tensor& gate_up, const Tensor& x, const Tensor& w13) {
  if (rows_of(x) != 1) return Backend::linear_swiglu(out, gate_up, x, w13);
  expect(out, "linear_swiglu", "out");
  expect(x, "linear_swiglu", "x");
  expect(w13, "linear_swiglu", "w13", false);
  const int ffn = int(out.dim(-1));
  LLAMA_TP_CHECK(w13.ndim() == 2 && w13.dim(0) == 2 * ffn && w13.dim(1) == x.dim(-1) && rows_of(out) == 1,
                 "linear_swiglu: x ", x.shape_string(), " · w13 ", w13.shape_string(), "ᵀ does not fit out ",
                 out.shape_string());
  kernels::gemv_swiglu_cuda(out.data<float>(), x.data<float>(), w13.raw(), w13.dtype(), ffn, int(w13.dim(1)),
                            stream_);
}

void CudaBackend::rope_qk(Tensor& qkv, const AttentionShape& shape, int pos0, const Tensor& inv_freq) {
  expect(qkv, "rope_qk", "qkv");
  LLAMA_TP_CHECK(qkv.dim(-1) == shape.qkv_width(), "rope_qk: qkv rows of ", qkv.dim(-1), " values, expected ",
                 shape.qkv_width());
  const float* freq = device_inv_freq(inv_freq, shape, "rope_qk");
  const int32_t* pos_dev = step_position(pos0, rows_of(qkv), "rope_qk");
  kernels::rope_qk_cuda(qkv.data<float>(), rows_of(qkv), shape.n_heads, shape.n_kv_heads, shape.head_dim,
                        int(qkv.dim(-1)), pos_dev ? 0 : pos0, pos_dev, freq, stream_);
}

void CudaBackend::kv_append(Tensor& k_cache, Tensor& v_cache, const Tensor& qkv, const AttentionShape& shape,
                            int pos0) {
  expect(qkv, "kv_append", "qkv");
  LLAMA_TP_CHECK(qkv.dim(-1) == shape.qkv_width(), "kv_append: qkv ", qkv.shape_string(),
                 " does not match the attention shape");
  const int n_tokens = rows_of(qkv);
  const int32_t* pos_dev = cache_position(k_cache, v_cache, shape, pos0, n_tokens, "kv_append");
  kernels::kv_append_cuda(k_cache.raw(), v_cache.raw(), k_cache.dtype(), qkv.data<float>(), int(qkv.dim(-1)),
                          n_tokens, shape.n_heads, shape.n_kv_heads, shape.head_dim, pos_dev ? 0 : pos0, pos_dev,
                          shape.max_seq, stream_);
}

void CudaBackend::rope_kv_append(Tensor& qkv, Tensor& k_cache, Tensor& v_cache, const AttentionShape& shape,
                                 int pos0, const Tensor& inv_freq) {
  expect(qkv, "rope_kv_append", "qkv");
  LLAMA_TP_CHECK(qkv.dim(-1) == shape.qkv_width(), "rope_kv_append: qkv ", qkv.shape_string(),
                 " does not match the attention shape");
  const float* freq = device_inv_freq(inv_freq, shape, "rope_kv_append");
  const int n_tokens = rows_of(qkv);
  const int32_t* pos_dev = cache_position(k_cache, v_cache, shape, pos0, n_tokens, "rope_kv_append");
  kernels::rope_kv_append_cuda(qkv.data<float>(), k_cache.raw(), v_cache.raw(), k_cache.dtype(), n_tokens,
                               shape.n_heads, shape.n_kv_heads, shape.head_dim, int(qkv.dim(-1)), pos_dev ? 0 : pos0,
                               pos_dev, freq, shape.max_seq, stream_);
}

void CudaBackend::attention(Tensor& out, const Tensor& qkv, const Tensor& k_cache, const Tensor& v_cache,
                            const AttentionShape& shape, int pos0) {
  expect(out, "attention", "out");
  expect(qkv, "attention", "qkv");
  const int n_tokens = rows_of(qkv);
  LLAMA_TP_CHECK(qkv.dim(-1) == shape.qkv_width() && out.numel() == int64_t(n_tokens) * shape.n_heads * shape.head_dim,
                 "attention: out ", out.shape_string(), " or qkv ", qkv.shape_string(),
                 " does not match the attention shape");
  const int32_t* pos_dev = cache_position(k_cache, v_cache, shape, pos0, n_tokens, "attention");
  kernels::AttentionArgs a{out.data<float>(), qkv.data<float>(), int(qkv.dim(-1)), k_cache.raw(), v_cache.raw(),
                           k_cache.dtype(), n_tokens, shape.n_heads, shape.n_kv_heads, shape.head_dim,
                           pos_dev ? 0 : pos0, shape.max_seq};
  a.pos_dev = pos_dev;
  if (shape.n_kv_heads <= kAttentionCounters) a.split_counters = counters_;
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
  const int rows = rows_of(logits);
  LLAMA_TP_CHECK(ids.dtype() == DType::I32 && ids.numel() == rows, "argmax: ids must be i32 [", rows, "], not ",
                 dtype_name(ids.dtype()), ids.shape_string());
  kernels::argmax_cuda(ids.data<int32_t>(), nullptr, logits.data<float>(), rows, int(logits.dim(-1)), stream_,
                       rows <= kArgmaxRows ? argmax_scratch_ : nullptr, counters_ + kAttentionCounters);
}

void CudaBackend::argmax(Tensor& ids, Tensor& values, const Tensor& logits) {
  expect(ids, "argmax", "ids", false);
  expect(values, "argmax", "values");
  expect(logits, "argmax", "logits");
  const int rows = rows_of(logits);
  LLAMA_TP_CHECK(ids.dtype() == DType::I32 && ids.numel() == rows && values.numel() == rows,
                 "argmax: ids must be i32 [", rows, "] and values f32 [", rows, "], not ", dtype_name(ids.dtype()),
                 ids.shape_string(), " and ", values.shape_string());
  kernels::argmax_cuda(ids.data<int32_t>(), values.data<float>(), logits.data<float>(), rows, int(logits.dim(-1)),
                       stream_, rows <= kArgmaxRows ? argmax_scratch_ : nullptr, counters_ + kAttentionCounters);
}

void CudaBackend::set_step(int32_t token, int pos) {
  LLAMA_TP_CHECK(!capturing_, "set_step while a graph is being recorded: set the step slot before each replay");
  LLAMA_TP_CHECK(pos >= 0, "set_step: position ", pos, " is negative");
  // The previous update may still be reading the pinned source.
  CUDA_CHECK(cudaEventSynchronize(step_copied_));
  step_host_[0] = token;
  step_host_[1] = pos;
  CUDA_CHECK(cudaMemcpyAsync(step_device_, step_host_, 2 * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaEventRecord(step_copied_, stream_));
}

Tensor CudaBackend::step_tokens() { return Tensor::view(step_device_, {1}, DType::I32, Device::CUDA); }

const void* CudaBackend::download(const Tensor& src) {
  expect(src, "download", "src", false);
  LLAMA_TP_CHECK(!capturing_, "download while a graph is being recorded");
  const size_t n = src.nbytes();
  if (n > kMaxPinnedDownload) {
    // Pageable destination: the copy completes before cudaMemcpyAsync returns.
    large_download_.resize(n);
    CUDA_CHECK(cudaMemcpyAsync(large_download_.data(), src.raw(), n, cudaMemcpyDeviceToHost, stream_));
    return large_download_.data();
  }
  if (n > host_buffer_bytes_) {
    synchronize();  // an earlier download may still be landing in the old buffer
    CUDA_CHECK(cudaFreeHost(host_buffer_));
    host_buffer_ = nullptr;
    host_buffer_bytes_ = 0;
    CUDA_CHECK(cudaMallocHost(&host_buffer_, n));
    host_buffer_bytes_ = n;
  }
  CUDA_CHECK(cudaMemcpyAsync(host_buffer_, src.raw(), n, cudaMemcpyDeviceToHost, stream_));
  return host_buffer_;
}

bool CudaBackend::supports_graphs() const {
#ifdef NDEBUG
  return true;
#else
  return false;  // CUDA_CHECK_LAUNCH synchronises after every launch in debug builds
#endif
}

void CudaBackend::begin_capture() {
  LLAMA_TP_CHECK(!capturing_, "begin_capture: a graph is already being recorded");
  // Thread-local mode: this thread may not call unsafe APIs (allocations, synchronous copies)
  // while recording, which the checks above also refuse; NCCL's proxy threads are not affected.
  CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
}

std::unique_ptr<Backend::Graph> CudaBackend::end_capture() {
  LLAMA_TP_CHECK(capturing_, "end_capture without begin_capture");
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  auto g = std::make_unique<CudaGraph>();
  g->workspace_epoch = workspace_epoch_;
  const cudaError_t err = cudaGraphInstantiate(&g->exec, graph, 0);
  cudaGraphDestroy(graph);
  CUDA_CHECK(err);
  return g;
}

void CudaBackend::abort_capture() {
  if (!capturing_) return;
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  // Fails when an error invalidated the capture; the stream stops recording either way.
  if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
  cudaGetLastError();
}

bool CudaBackend::replay(Graph& graph) {
  auto* g = dynamic_cast<CudaGraph*>(&graph);
  LLAMA_TP_CHECK(g && g->exec, "replay: not a graph recorded by this backend");
  if (g->workspace_epoch != workspace_epoch_) return false;
  CUDA_CHECK(cudaGraphLaunch(g->exec, stream_));
  return true;
}

void CudaBackend::cast(Tensor& out, const Tensor& in) {
  expect(out, "cast", "out", false);
  expect(in, "cast", "in", false);
  LLAMA_TP_CHECK(out.numel() == in.numel(), "cast: ", in.shape_string(), " into ", out.shape_string());
  kernels::convert_cuda(out.raw(), out.dtype(), in.raw(), in.dtype(), size_t(in.numel()), stream_);
}

std::unique_ptr<Backend> make_cuda_backend(DType compute_dtype, int device_index, std::optional<DType> kv_dtype,
                                           bool precise_activations) {
  return std::make_unique<CudaBackend>(compute_dtype, device_index, kv_dtype, precise_activations);
}

std::pair<size_t, size_t> CudaBackend::memory_info() {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return {free_b, total_b};
}

std::string CudaBackend::kernel_timeline(const std::function<void()>& step) {
  if (!kernels::timeline_on()) return {};
  kernels::timeline_reset();
  step();
  return kernels::timeline_report();
}

}  // namespace llama_tp
