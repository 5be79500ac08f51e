// The CPU backend: float32 everywhere, each op a call into kernels/*.cpp. It is the oracle for
// the CUDA backend and a complete engine of its own (CI runs tensor parallelism on it).
#include <cstring>

#include "kernels/argmax.h"
#include "kernels/attention.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/matmul_int8.h"
#include "kernels/quantize.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "runtime/backend.h"
#include "runtime/error.h"

namespace llama_tp {
namespace {

void expect_f32_cpu(const Tensor& t, const char* what) {
  LLAMA_TP_CHECK(t.device() == Device::CPU && t.dtype() == DType::F32, "CPU backend: ", what,
                 " must be a float32 CPU tensor, got ", dtype_name(t.dtype()), " on ", device_name(t.device()));
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }

  Tensor upload_weight(const Tensor& host) override {
    LLAMA_TP_CHECK(host.device() == Device::CPU, "CPU backend: weights must come from host memory");
    Tensor out = Tensor::empty(host.shape(), DType::F32);
    convert_to_f32(host.raw(), host.dtype(), out.data<float>(), size_t(host.numel()));
    return out;
  }

  // int8: quantized on the host, from the weight converted to float32.
  LinearWeight upload_linear(const Tensor& host, const QuantSpec& quant) override {
    Tensor w = upload_weight(host);
    if (!quant.int8) return LinearWeight(std::move(w));
    LLAMA_TP_CHECK(w.ndim() == 2, "int8 weights must be matrices, not ", w.shape_string());
    const int64_t n = w.dim(0), k = w.dim(1), group = quant.group_for(k);
    Tensor q = Tensor::empty({n, k}, DType::I8), scales = Tensor::empty({n, quant_groups(k, group)}, kernels::kQuantScaleDType);
    kernels::quantize_int8_cpu(q.data<int8_t>(), scales.data<kernels::QuantScale>(), w.data<float>(), n, k, group);
    return LinearWeight(std::move(q), std::move(scales), int(group));
  }

  Tensor alloc(std::vector<int64_t> shape, DType dtype) override { return Tensor::empty(std::move(shape), dtype); }
  DType kv_dtype() const override { return DType::F32; }

  void embedding(Tensor& out, const Tensor& table, const Tensor& ids) override {
    expect_f32_cpu(out, "embedding output");
    LLAMA_TP_CHECK(ids.dtype() == DType::I32, "CPU backend: token ids must be i32");
    kernels::embedding_cpu(out.data<float>(), table.data<float>(), ids.data<int32_t>(), int(ids.numel()),
                           int(table.dim(1)));
  }

  void rmsnorm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) override {
    expect_f32_cpu(x, "rmsnorm input");
    int dim = int(x.dim(-1));
    kernels::rmsnorm_cpu(out.data<float>(), x.data<float>(), weight.data<float>(), int(x.numel() / dim), dim, eps);
  }

  void linear(Tensor& out, const Tensor& x, const Tensor& w) override {
    expect_f32_cpu(x, "linear input");
    expect_f32_cpu(w, "linear weight");
    LLAMA_TP_CHECK(x.dim(-1) == w.dim(1) && out.dim(-1) == w.dim(0), "linear: x ", x.shape_string(), " w ",
                   w.shape_string(), " out ", out.shape_string(), " do not agree");
    kernels::matmul_cpu(out.data<float>(), x.data<float>(), w.data<float>(), int(x.numel() / x.dim(-1)),
                        int(w.dim(0)), int(w.dim(1)));
  }

  void add_rmsnorm(Tensor& out, Tensor& x_out, const Tensor& x, const Tensor& delta, const Tensor& weight,
                   float eps) override {
    expect_f32_cpu(x, "add_rmsnorm input");
    expect_f32_cpu(delta, "add_rmsnorm delta");
    expect_f32_cpu(x_out, "add_rmsnorm x_out");
    LLAMA_TP_CHECK(x.numel() == delta.numel() && out.numel() == x.numel() && x_out.numel() == x.numel() &&
                       out.raw() != x.raw() && out.raw() != x_out.raw() && out.raw() != delta.raw(),
                   "add_rmsnorm: x ", x.shape_string(), ", delta ", delta.shape_string(), ", x_out ",
                   x_out.shape_string(), ", out ", out.shape_string(), " disagree (or out aliases an input)");
    int dim = int(x.dim(-1));
    kernels::add_rmsnorm_cpu(out.data<float>(), x_out.data<float>(), x.data<float>(), delta.data<float>(),
                             weight.data<float>(), int(x.numel() / dim), dim, eps);
  }

  void linear(Tensor& out, const Tensor& x, const LinearWeight& w) override {
    if (!w.quantized()) return linear(out, x, w.values);
    expect_f32_cpu(x, "linear input");
    LLAMA_TP_CHECK(w.dtype() == DType::I8 && w.ndim() == 2 && x.dim(-1) == w.dim(1) && out.dim(-1) == w.dim(0),
                   "linear: x ", x.shape_string(), " w ", w.shape_string(), " (", w.format(), ") out ",
                   out.shape_string(), " do not agree");
    kernels::matmul_int8_cpu(out.data<float>(), x.data<float>(), w.values.data<int8_t>(), w.scales.data<kernels::QuantScale>(),
                             int(x.numel() / x.dim(-1)), int(w.dim(0)), int(w.dim(1)), w.group);
  }

  void rope_qk(Tensor& qkv, const AttentionShape& s, int pos0, const Tensor& inv_freq) override {
    pos0 = position(pos0, qkv);
    int n_tokens = int(qkv.dim(0));
    positions_.resize(n_tokens);
    for (int t = 0; t < n_tokens; ++t) positions_[t] = pos0 + t;
    float* base = qkv.data<float>();
    const float* f = inv_freq.data<float>();
    kernels::rope_cpu(base, n_tokens, s.n_heads, s.head_dim, s.qkv_width(), positions_.data(), f);
    kernels::rope_cpu(base + s.n_heads * s.head_dim, n_tokens, s.n_kv_heads, s.head_dim, s.qkv_width(),
                      positions_.data(), f);
  }

  void kv_append(Tensor& k_cache, Tensor& v_cache, const Tensor& qkv, const AttentionShape& s, int pos0) override {
    pos0 = position(pos0, qkv);
    int n_tokens = int(qkv.dim(0));
    const float* k = qkv.data<float>() + s.n_heads * s.head_dim;
    const float* v = k + s.n_kv_heads * s.head_dim;
    kernels::kv_write_cpu(k_cache.data<float>(), k, n_tokens, s.n_kv_heads, s.head_dim, s.qkv_width(), pos0, s.max_seq);
    kernels::kv_write_cpu(v_cache.data<float>(), v, n_tokens, s.n_kv_heads, s.head_dim, s.qkv_width(), pos0, s.max_seq);
  }

  void attention(Tensor& out, const Tensor& qkv, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionShape& s, int pos0) override {
    pos0 = position(pos0, qkv);
    kernels::attention_cpu(out.data<float>(), qkv.data<float>(), s.qkv_width(), k_cache.data<float>(),
                           v_cache.data<float>(), int(qkv.dim(0)), s.n_heads, s.n_kv_heads, s.head_dim, pos0,
                           s.max_seq);
  }

  void swiglu(Tensor& out, const Tensor& gate_up) override {
    kernels::swiglu_cpu(out.data<float>(), gate_up.data<float>(), int(gate_up.dim(0)), int(gate_up.dim(1) / 2));
  }

  void add(Tensor& x, const Tensor& y) override {
    LLAMA_TP_CHECK(x.numel() == y.numel(), "add: sizes differ");
    kernels::add_cpu(x.data<float>(), y.data<float>(), size_t(x.numel()));
  }

  void argmax(Tensor& ids, Tensor& values, const Tensor& logits) override {
    expect_f32_cpu(logits, "argmax input");
    const int n = int(logits.dim(-1)), rows = int(logits.numel() / n);
    LLAMA_TP_CHECK(ids.dtype() == DType::I32 && ids.numel() == rows && values.dtype() == DType::F32 &&
                       values.numel() == rows,
                   "argmax: ids must be i32 [", rows, "] and values f32 [", rows, "]");
    for (int r = 0; r < rows; ++r) {
      const float* row = logits.data<float>() + size_t(r) * n;
      const int best = kernels::argmax_cpu(row, n);
      ids.data<int32_t>()[r] = best;
      values.data<float>()[r] = row[best];
    }
  }

  void set_step(int32_t token, int pos) override {
    LLAMA_TP_CHECK(pos >= 0, "set_step: position ", pos, " is negative");
    step_token_ = token;
    step_pos_ = pos;
  }
  Tensor step_tokens() override { return Tensor::view(&step_token_, {1}, DType::I32); }
  const void* download(const Tensor& src) override {
    LLAMA_TP_CHECK(src.device() == Device::CPU, "CPU backend: download of a ", device_name(src.device()), " tensor");
    return src.raw();  // already in host memory
  }

  void synchronize() override {}

 private:
  // pos0, or the step slot's position for kStepPos (one token only).
  int position(int pos0, const Tensor& qkv) const {
    if (pos0 != kStepPos) return pos0;
    LLAMA_TP_CHECK(qkv.dim(0) == 1, "kStepPos is for one-token steps, not ", qkv.dim(0), " tokens");
    return step_pos_;
  }

  std::vector<int32_t> positions_;
  int32_t step_token_ = 0;
  int step_pos_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace llama_tp
