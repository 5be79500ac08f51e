#pragma once
#include <optional>
// The CUDA backend: one GPU, weights in a compute dtype (bf16, f16 or f32), activations in
// float32, fp32 accumulation everywhere. Every op is queued on one stream that the backend owns
// (a blocking stream, so Tensor::copy_from/to_floats on the default stream stay ordered with
// it); no op waits for the GPU. Kernels live in kernels/*.cu.
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/backend.h"

struct CUstream_st;     // cudaStream_t is CUstream_st*
struct CUevent_st;      // cudaEvent_t is CUevent_st*
struct cublasContext;   // cublasHandle_t is cublasContext*

namespace llama_tp {
namespace kernels {
struct GemvInput;
}  // namespace kernels

class CudaBackend : public Backend {
 public:
  // Selects device_index (cudaSetDevice) and creates the stream and the cuBLAS handle.
  // kv_dtype: the KV cache's dtype (default: the compute dtype). precise_activations: products
  // of many tokens see float32 activations (split into two 16-bit halves, twice the FLOPs)
  // instead of activations rounded to the weight dtype.
  CudaBackend(DType compute_dtype, int device_index, std::optional<DType> kv_dtype = std::nullopt,
              bool precise_activations = false);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::CUDA; }
  std::string name() const override;  // "cuda:0 (NVIDIA H100 80GB HBM3, bf16)"

  Tensor upload_weight(const Tensor& host) override;
  Tensor upload_norm(const Tensor& host) override;
  // int8: the shard is copied in its own dtype and quantized on the GPU (backend_cuda_int8.cu).
  LinearWeight upload_linear(const Tensor& host, const QuantSpec& quant) override;
  Tensor alloc(std::vector<int64_t> shape, DType dtype) override;
  Tensor make_dummy_block(const kernels::DummyFill& fill, const std::vector<int64_t>& shape, DType dtype) override;
  DType kv_dtype() const override { return kv_dtype_; }

  void embedding(Tensor& out, const Tensor& table, const Tensor& ids) override;
  void rmsnorm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) override;
  void linear(Tensor& out, const Tensor& x, const Tensor& w) override;
  void linear(Tensor& out, const Tensor& x, const LinearWeight& w) override;
  // inv_freq: float32, on the device or the host (a host one is copied once and cached).
  void rope_qk(Tensor& qkv, const AttentionShape& shape, int pos0, const Tensor& inv_freq) override;
  void kv_append(Tensor& k_cache, Tensor& v_cache, const Tensor& qkv, const AttentionShape& shape,
                 int pos0) override;
  void attention(Tensor& out, const Tensor& qkv, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionShape& shape, int pos0) override;
  void swiglu(Tensor& out, const Tensor& gate_up) override;
  void add(Tensor& x, const Tensor& y) override;
  void argmax(Tensor& ids, Tensor& values, const Tensor& logits) override;
  // Fused: one kernel each (linear_swiglu for one token; more go through cuBLAS and swiglu).
  void linear_swiglu(Tensor& out, Tensor& gate_up, const Tensor& x, const Tensor& w13) override;
  void add_rmsnorm(Tensor& out, Tensor& x_out, const Tensor& x, const Tensor& delta, const Tensor& weight,
                   float eps) override;
  // One token: one kernel each (kernels/gemv_cuda.h: norm in front, SwiGLU or RoPE + KV write
  // behind); more tokens, or rows too long to stage, compose the unfused ops.
  void norm_linear(Tensor& out, const NormedInput& in, const LinearWeight& w) override;
  void norm_linear_swiglu(Tensor& out, Tensor& gate_up, const NormedInput& in, const LinearWeight& w13) override;
  void norm_linear_rope_kv(Tensor& qkv, Tensor& k_cache, Tensor& v_cache, const AttentionShape& shape, int pos0,
                           const Tensor& inv_freq, const NormedInput& in, const LinearWeight& wqkv) override;
  void rope_kv_append(Tensor& qkv, Tensor& k_cache, Tensor& v_cache, const AttentionShape& shape, int pos0,
                      const Tensor& inv_freq) override;

  // Step slot: updated by a cudaMemcpyAsync from pinned memory, ordered on the stream.
  void set_step(int32_t token, int pos) override;
  Tensor step_tokens() override;
  // Into a pinned buffer, on the stream.
  const void* download(const Tensor& src) override;

  // CUDA graphs (stream capture, thread-local mode). Release builds only: debug builds
  // synchronise after every launch (CUDA_CHECK_LAUNCH), which a capture forbids.
  bool supports_graphs() const override;
  void begin_capture() override;
  std::unique_ptr<Graph> end_capture() override;
  void abort_capture() override;
  bool replay(Graph& graph) override;
  void synchronize() override;

  // ---- CUDA-only ops and accessors ----
  // ids[r] = argmax of logits row r (i32 [rows] on the device; first index on ties).
  void argmax(Tensor& ids, const Tensor& logits);
  // out = in converted to out's dtype (f32, f16, bf16; same element count).
  void cast(Tensor& out, const Tensor& in);
  // Which kernel linear() uses: Auto picks the GEMV for one token and cuBLAS otherwise.
  enum class LinearAlgo { Auto, Gemv, Cublas };
  void linear_with(Tensor& out, const Tensor& x, const Tensor& w, LinearAlgo algo);
  // For int8 weights Gemv is the int8 GEMV and Cublas dequantizes tiles of w for cuBLAS.
  void linear_with(Tensor& out, const Tensor& x, const LinearWeight& w, LinearAlgo algo);

  void* stream() const;  // the cudaStream_t every op runs on (for the NCCL communicator)
  void* native_stream() override { return stream(); }
  std::pair<size_t, size_t> memory_info() override;
  std::string kernel_timeline(const std::function<void()>& step) override;
  int device_index() const { return device_index_; }
  DType compute_dtype() const { return compute_dtype_; }

 private:
  // src (any float dtype, host or device) as a device tensor of `dtype`.
  Tensor upload_as(const Tensor& src, DType dtype);
  // Scratch on the stream, grown stream-ordered when too small (which outdates recorded graphs;
  // growing while recording is an error).
  void* workspace(size_t nbytes);
  // The device int an op reads its position from (pos0 == kStepPos), else nullptr.
  const int32_t* step_position(int pos0, int n_tokens, const char* op) const;
  // step_position, after checking that k_cache and v_cache are caches of `shape` and that the
  // positions pos0 .. pos0 + n_tokens fit them (the checks every op on the caches makes).
  const int32_t* cache_position(const Tensor& k_cache, const Tensor& v_cache, const AttentionShape& shape, int pos0,
                                int n_tokens, const char* op) const;
  const float* device_inv_freq(const Tensor& inv_freq, const AttentionShape& shape, const char* op);
  // The fused GEMV's input for a NormedInput of one token (false: take the unfused path).
  bool fused_gemv_input(const NormedInput& in, const LinearWeight& w, const char* op, kernels::GemvInput& g);

  DType compute_dtype_;
  DType kv_dtype_;
  bool precise_activations_ = false;
  int device_index_;
  CUstream_st* stream_ = nullptr;
  cublasContext* cublas_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  uint64_t workspace_epoch_ = 0;    // bumped when the workspace moves
  bool capturing_ = false;
  int32_t* step_device_ = nullptr;  // {token, position}
  int32_t* step_host_ = nullptr;    // pinned source of the last update
  CUevent_st* step_copied_ = nullptr;
  unsigned* counters_ = nullptr;    // zeroed once; kernels that count finished blocks leave them zero
  void* argmax_scratch_ = nullptr;
  void* host_buffer_ = nullptr;     // pinned, for download()
  size_t host_buffer_bytes_ = 0;
  std::vector<char> large_download_;
  Tensor inv_freq_device_;          // device copy of a host inv_freq passed to rope_qk
  std::vector<float> inv_freq_host_;
};

// compute_dtype: f32, f16 or bf16; device_index: a visible CUDA device.
std::unique_ptr<Backend> make_cuda_backend(DType compute_dtype, int device_index,
                                           std::optional<DType> kv_dtype = std::nullopt,
                                           bool precise_activations = false);

}  // namespace llama_tp
