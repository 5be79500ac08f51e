#pragma once
// A Backend computes the ops of one rank's forward pass on one kind of device. The forward
// pass (runtime/model.cpp) is written once against this interface; the CPU backend (float32
// reference, kernels/*.cpp) and the CUDA backend (kernels/*.cu, cuBLAS) implement it.
//
// Conventions: activations are float32 tensors [n_tokens, width] on the backend's device.
// Weights are [out_features, in_features] in the dtype the backend chose in upload_weight().
// All ops are asynchronous on the backend's stream; synchronize() waits for them.
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "runtime/linear_weight.h"
#include "runtime/tensor.h"

namespace llama_tp {

// This rank's attention geometry (local head counts after sharding).
struct AttentionShape {
  int n_heads = 0;     // query heads on this rank
  int n_kv_heads = 0;  // kv heads on this rank
  int head_dim = 0;
  int max_seq = 0;     // KV cache capacity (positions)
  int qkv_width() const { return (n_heads + 2 * n_kv_heads) * head_dim; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // Copies a host weight (any dtype) into this backend's storage for weights (CPU: float32;
  // CUDA: its compute dtype).
  virtual Tensor upload_weight(const Tensor& host) = 0;
  // Uploads a linear layer's weight (host [out, in], any float dtype) stored as `quant` asks:
  // as upload_weight does, or int8 quantized here (runtime/linear_weight.h). The default
  // implementation refuses int8.
  virtual LinearWeight upload_linear(const Tensor& host, const QuantSpec& quant);
  // Uninitialised buffer on this backend's device.
  virtual Tensor alloc(std::vector<int64_t> shape, DType dtype) = 0;
  // dtype of the KV cache (CPU: f32; CUDA: compute dtype).
  virtual DType kv_dtype() const = 0;

  // out[t] = table[ids[t]]; ids is an i32 tensor [n_tokens] on this device.
  virtual void embedding(Tensor& out, const Tensor& table, const Tensor& ids) = 0;
  // out = rmsnorm(x) * weight, row by row. out may alias x.
  virtual void rmsnorm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) = 0;
  // out[T, N] = x[T, K] · w[N, K]ᵀ
  virtual void linear(Tensor& out, const Tensor& x, const Tensor& w) = 0;
  // The same for a plain or int8 LinearWeight (the default handles plain ones only).
  virtual void linear(Tensor& out, const Tensor& x, const LinearWeight& w);
  // Rotates the q and k parts of fused qkv rows ([T, qkv_width]) for positions pos0.. .
  virtual void rope_qk(Tensor& qkv, const AttentionShape& shape, int pos0, const Tensor& inv_freq) = 0;
  // Writes the k and v parts of qkv into the caches ([n_kv_heads, max_seq, head_dim]) at pos0.. .
  virtual void kv_append(Tensor& k_cache, Tensor& v_cache, const Tensor& qkv,
                         const AttentionShape& shape, int pos0) = 0;
  // Causal attention of the q part of qkv over cache positions 0 ..= pos0 + t; out [T, n_heads*head_dim].
  virtual void attention(Tensor& out, const Tensor& qkv, const Tensor& k_cache, const Tensor& v_cache,
                         const AttentionShape& shape, int pos0) = 0;
  // out[T, F] = silu(gate) * up with gate_up rows [gate(F) | up(F)].
  virtual void swiglu(Tensor& out, const Tensor& gate_up) = 0;
  // x += y
  virtual void add(Tensor& x, const Tensor& y) = 0;
  // Waits for all queued work.
  virtual void synchronize() = 0;
  // The backend's native stream (cudaStream_t on CUDA) for communicators that enqueue on it;
  // nullptr where there is none.
  virtual void* native_stream() { return nullptr; }
  // Bytes of device memory free and in total (0, 0 where not meaningful, e.g. the CPU).
  virtual std::pair<size_t, size_t> memory_info() { return {0, 0}; }
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace llama_tp
