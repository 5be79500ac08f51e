#pragma once
// A Backend computes the ops of one rank's forward pass on one kind of device. The forward
// pass (runtime/model.cpp) is written once against this interface; the CPU backend (float32
// reference, kernels/*.cpp) and the CUDA backend (kernels/*.cu, cuBLAS) implement it.
//
// Conventions: activations are float32 tensors [n_tokens, width] on the backend's device.
// Weights are [out_features, in_features] in the dtype the backend chose in upload_weight().
// All ops are asynchronous on the backend's stream; synchronize() waits for them.
#include <functional>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "kernels/dummy_fill.h"
#include "runtime/error.h"
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

// pos0 for a one-token rope_qk, kv_append, rope_kv_append or attention that reads the position
// of its token from the backend's step slot on the device (set_step) instead of from the host.
// Work queued that way does not change from one decode step to the next, so it can be recorded
// once as a graph and replayed (see begin_capture).
inline constexpr int kStepPos = -1;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // Copies a host weight (any dtype) into this backend's storage for weights (CPU: float32;
  // CUDA: its compute dtype). A tensor already on the device in that dtype is taken as it is.
  virtual Tensor upload_weight(const Tensor& host) = 0;
  // Copies a norm's weights (a vector, any float dtype) into this backend's storage for them:
  // upload_weight's by default. The CUDA backend keeps them in f32, the dtype its fused GEMVs
  // stage x with inline (kernels/gemv.cu, stages_in_vectors).
  virtual Tensor upload_norm(const Tensor& host) { return upload_weight(host); }
  // Uploads a linear layer's weight (host [out, in], any float dtype) stored as `quant` asks:
  // as upload_weight does, or int8 quantized here (runtime/linear_weight.h). The default
  // implementation refuses int8.
  virtual LinearWeight upload_linear(const Tensor& host, const QuantSpec& quant);
  // A block of dummy weights (kernels/dummy_fill.h) of `shape` in `dtype`, made on this
  // backend's device; undefined where the host makes them (the default).
  virtual Tensor make_dummy_block(const kernels::DummyFill& fill, const std::vector<int64_t>& shape, DType dtype) {
    (void)fill, (void)shape, (void)dtype;
    return {};
  }
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
  // ids[r] (i32) and values[r] (f32): index and value of the largest logit of row r of logits
  // ([rows, n]; the first index on ties). The greedy path: a few bytes per row leave the device.
  virtual void argmax(Tensor& ids, Tensor& values, const Tensor& logits) = 0;

  // ---- Fused ops. The defaults compose the unfused ops; that composition is the reference ----
  // (add_rmsnorm has none: each backend writes x_out on its own stream.)
  // x_out = x + delta (x_out may alias x), then out = rmsnorm(x_out) * weight. out must not alias
  // x, delta or x_out.
  virtual void add_rmsnorm(Tensor& out, Tensor& x_out, const Tensor& x, const Tensor& delta, const Tensor& weight,
                           float eps) = 0;
  // out[T, F] = silu(x · gateᵀ) * (x · upᵀ) with w13 rows [gate(F) | up(F)]: linear into
  // gate_up ([T, 2F], scratch), then swiglu. A backend may leave the scratch unused.
  virtual void linear_swiglu(Tensor& out, Tensor& gate_up, const Tensor& x, const Tensor& w13) {
    linear(gate_up, x, w13);
    swiglu(out, gate_up);
  }
  // rope_qk, then kv_append of the rotated k (and v): one pass over qkv.
  virtual void rope_kv_append(Tensor& qkv, Tensor& k_cache, Tensor& v_cache, const AttentionShape& shape,
                              int pos0, const Tensor& inv_freq) {
    rope_qk(qkv, shape, pos0, inv_freq);
    kv_append(k_cache, v_cache, qkv, shape, pos0);
  }

  // ---- A pre-norm sublayer's input fused into its first linear layer ----
  // The residual stream x ([T, dim]) enters a sublayer: when delta is defined (the previous
  // sublayer's output) x_out = x + delta is the new stream; the sublayer's first linear layer
  // takes rmsnorm(stream) * weight. h ([T, dim]) is scratch for a backend that writes the
  // normalized rows out. x_out must not alias x (a fused kernel reads x while writing x_out).
  struct NormedInput {
    const Tensor& x;
    const Tensor& delta;  // undefined: x is the stream as is, x_out is not written
    Tensor& x_out;
    const Tensor& weight;
    float eps;
    Tensor& h;
  };
  // out = linear(normed input, w)
  virtual void norm_linear(Tensor& out, const NormedInput& in, const LinearWeight& w);
  // out = silu(gate) * up of the normed input (linear_swiglu)
  virtual void norm_linear_swiglu(Tensor& out, Tensor& gate_up, const NormedInput& in, const LinearWeight& w13);
  // qkv = linear(normed input, wqkv), then rope_kv_append
  virtual void norm_linear_rope_kv(Tensor& qkv, Tensor& k_cache, Tensor& v_cache, const AttentionShape& shape,
                                   int pos0, const Tensor& inv_freq, const NormedInput& in, const LinearWeight& wqkv);

  // ---- The step slot: token id and position of a one-token step, in device memory ----
  // Queues the update of the slot (stream-ordered; the host does not wait). Ops then read the
  // position from it when given pos0 = kStepPos, and embedding() the token from step_tokens().
  virtual void set_step(int32_t token, int pos) = 0;
  // i32 [1] on this device: the slot's token id.
  virtual Tensor step_tokens() = 0;

  // Queues a copy of src into host memory that the backend owns and returns its address; the
  // bytes are there after synchronize() (and stay until the next download).
  virtual const void* download(const Tensor& src) = 0;

  // ---- Graphs: queued work recorded once and replayed (CUDA graphs) ----
  // A Graph holds what was queued between begin_capture() and end_capture(), with the pointers
  // and launch shapes it had: replaying repeats exactly that work, so everything that changes
  // between replays must be read from device memory (the step slot).
  struct Graph {
    virtual ~Graph() = default;
  };
  virtual bool supports_graphs() const { return false; }
  // From here to end_capture(), ops are recorded instead of run. Nothing may wait for the device
  // or allocate in between (an op that would must throw).
  virtual void begin_capture() { LLAMA_TP_FAIL("the ", name(), " backend does not record graphs"); }
  virtual std::unique_ptr<Graph> end_capture() { LLAMA_TP_FAIL("the ", name(), " backend does not record graphs"); }
  // Ends a capture that failed part-way (after an exception); nothing is kept. No-op otherwise.
  virtual void abort_capture() {}
  // Queues the recorded work. Returns false, queueing nothing, when the backend has since
  // reallocated memory the graph uses (its workspace): capture again.
  virtual bool replay(Graph& graph) { LLAMA_TP_FAIL("the ", name(), " backend does not record graphs"); }

  // Waits for all queued work.
  virtual void synchronize() = 0;
  // The backend's native stream (cudaStream_t on CUDA) for communicators that enqueue on it;
  // nullptr where there is none.
  virtual void* native_stream() { return nullptr; }
  // Bytes of device memory free and in total (0, 0 where not meaningful, e.g. the CPU).
  virtual std::pair<size_t, size_t> memory_info() { return {0, 0}; }
  // Development aid (CUDA with LLAMA_TP_TIMELINE=1, kernels/timeline_cuda.h): runs `step` and
  // returns where its kernels' time went, as a table; empty where there is no timeline.
  virtual std::string kernel_timeline(const std::function<void()>& step) { return {}; }
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace llama_tp
