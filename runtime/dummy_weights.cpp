#include "runtime/dummy_weights.h"

#include <cmath>
#include <cstring>
#include <regex>
#include <thread>

#include "runtime/backend.h"
#include "runtime/error.h"

namespace llama_tp {
namespace {

ModelConfig shape(int64_t dim, int64_t ffn, int64_t layers, int64_t heads, int64_t kv_heads, int64_t vocab,
                  int64_t max_seq, double theta, bool tied, bool llama3_rope, float eps) {
  ModelConfig c;
  c.dim = dim;
  c.ffn_dim = ffn;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.vocab_size = vocab;
  c.max_seq_len = max_seq;
  c.norm_eps = eps;
  c.tie_embeddings = tied;
  c.rope.theta = theta;
  if (llama3_rope) {
    c.rope.type = "llama3";
    c.rope.factor = 32.0;  // Llama 3.1/3.2 values; 3.0 had no scaling but the cost is identical
    c.rope.low_freq_factor = 1.0;
    c.rope.high_freq_factor = 4.0;
    c.rope.original_max_position_embeddings = 8192;
  }
  c.bos_token_id = vocab > 100000 ? 128000 : 1;
  c.eos_token_ids = {vocab > 100000 ? 128001 : 2};
  c.dtype = DType::BF16;
  return c;
}

uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

}  // namespace

std::optional<ModelConfig> named_model_shape(const std::string& name) {
  if (name == "llama3-8b") return shape(4096, 14336, 32, 32, 8, 128256, 8192, 500000, false, false, 1e-5f);
  if (name == "llama3-70b") return shape(8192, 28672, 80, 64, 8, 128256, 8192, 500000, false, false, 1e-5f);
  if (name == "llama3.2-1b") return shape(2048, 8192, 16, 32, 8, 128256, 131072, 500000, true, true, 1e-5f);
  if (name == "llama3.2-3b") {
    ModelConfig c = shape(3072, 8192, 28, 24, 8, 128256, 131072, 500000, true, true, 1e-5f);
    c.head_dim = 128;
    return c;
  }
  if (name == "llama2-7b") return shape(4096, 11008, 32, 32, 32, 32000, 4096, 10000, false, false, 1e-5f);
  if (name == "llama2-13b") return shape(5120, 13824, 40, 40, 40, 32000, 4096, 10000, false, false, 1e-5f);
  if (name == "llama2-70b") return shape(8192, 28672, 80, 64, 8, 32000, 4096, 10000, false, false, 1e-5f);
  if (name == "tinyllama-1.1b") return shape(2048, 5632, 22, 32, 4, 32000, 2048, 10000, false, false, 1e-5f);
  return std::nullopt;
}

std::vector<std::string> named_model_shapes() {
  return {"llama3-8b", "llama3-70b", "llama3.2-1b", "llama3.2-3b", "llama2-7b", "llama2-13b", "llama2-70b", "tinyllama-1.1b"};
}

DummyWeightSource::DummyWeightSource(ModelConfig config, uint64_t seed) : config_(std::move(config)), seed_(seed) {}

bool DummyWeightSource::has(const std::string& name) const {
  try {
    info(name);
    return true;
  } catch (const Error&) {
    return false;
  }
}

TensorInfo DummyWeightSource::info(const std::string& name) const {
  const ModelConfig& c = config_;
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  TensorInfo t{c.dtype, {}};
  if (name == "model.embed_tokens.weight") t.shape = {c.vocab_size, c.dim};
  else if (name == "lm_head.weight" && !c.tie_embeddings) t.shape = {c.vocab_size, c.dim};
  else if (name == "model.norm.weight") t.shape = {c.dim};
  else {
    static const std::regex layer_re(R"(model\.layers\.(\d+)\.(.+))");
    std::smatch m;
    LLAMA_TP_CHECK(std::regex_match(name, m, layer_re) && std::stoll(m[1]) < c.n_layers,
                   "dummy weights have no tensor named ", name);
    const std::string rest = m[2];
    if (rest == "input_layernorm.weight" || rest == "post_attention_layernorm.weight") t.shape = {c.dim};
    else if (rest == "self_attn.q_proj.weight") t.shape = {q, c.dim};
    else if (rest == "self_attn.k_proj.weight" || rest == "self_attn.v_proj.weight") t.shape = {kv, c.dim};
    else if (rest == "self_attn.o_proj.weight") t.shape = {c.dim, q};
    else if (rest == "mlp.gate_proj.weight" || rest == "mlp.up_proj.weight") t.shape = {c.ffn_dim, c.dim};
    else if (rest == "mlp.down_proj.weight") t.shape = {c.dim, c.ffn_dim};
    else LLAMA_TP_FAIL("dummy weights have no tensor named ", name);
  }
  return t;
}

kernels::DummyFill DummyWeightSource::fill_for(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0,
                                               int64_t n_cols, std::vector<int64_t>& shape) const {
  const TensorInfo ti = info(name);
  const bool is_1d = ti.shape.size() == 1;
  const int64_t rows = is_1d ? 1 : ti.shape[0], cols = is_1d ? ti.shape[0] : ti.shape[1];
  LLAMA_TP_CHECK(row0 >= 0 && n_rows >= 0 && row0 + n_rows <= rows && col0 >= 0 && n_cols >= 0 && col0 + n_cols <= cols,
                 "block out of range for ", name);
  shape = is_1d ? std::vector<int64_t>{n_cols} : std::vector<int64_t>{n_rows, n_cols};
  // Norm weights near 1 (as trained models have), matrices with variance 1/in_features so
  // activations keep a realistic scale through the layers, the embedding small.
  kernels::DummyFill f;
  f.base = kernels::splitmix64(name_hash(name) ^ seed_);
  f.cols = cols;
  f.row0 = row0;
  f.col0 = col0;
  f.center = is_1d ? 1.0f : 0.0f;
  f.half_width = is_1d ? 0.1f : name == "model.embed_tokens.weight" ? 0.05f : std::sqrt(3.0f / float(cols));
  return f;
}

Tensor DummyWeightSource::read_block(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0,
                                     int64_t n_cols, DType out) const {
  std::vector<int64_t> shape;
  const kernels::DummyFill f = fill_for(name, row0, n_rows, col0, n_cols, shape);
  Tensor t = Tensor::empty(shape, out);
  // Rows in parallel: a 70B model is 70e9 values to make.
  auto fill_rows = [&](int64_t r_begin, int64_t r_end) {
    std::vector<float> row(static_cast<size_t>(n_cols));
    for (int64_t r = r_begin; r < r_end; ++r) {
      for (int64_t j = 0; j < n_cols; ++j) row[size_t(j)] = kernels::dummy_value(f, r, j);
      convert_from_f32(row.data(), out, static_cast<char*>(t.raw()) + size_t(r * n_cols) * dtype_size(out), row.size());
    }
  };
  const int64_t work = n_rows * n_cols;
  const int n_threads = work < (1 << 20) ? 1 : int(std::max(1u, std::min(16u, std::thread::hardware_concurrency())));
  std::vector<std::thread> threads;
  for (int i = 0; i < n_threads; ++i)
    threads.emplace_back(fill_rows, n_rows * i / n_threads, n_rows * (i + 1) / n_threads);
  for (auto& th : threads) th.join();
  return t;
}

Tensor DummyWeightSource::read_block_for(Backend& backend, const std::string& name, int64_t row0, int64_t n_rows,
                                         int64_t col0, int64_t n_cols, DType out) const {
  std::vector<int64_t> shape;
  const kernels::DummyFill f = fill_for(name, row0, n_rows, col0, n_cols, shape);
  Tensor t = backend.make_dummy_block(f, shape, out);
  return t.defined() ? t : read_block(name, row0, n_rows, col0, n_cols, out);
}

Checkpoint dummy_checkpoint(const ModelConfig& config, const std::string& label) {
  Checkpoint ck;
  ck.config = config;
  ck.weights = std::make_unique<DummyWeightSource>(config);
  ck.path = label;
  return ck;
}

}  // namespace llama_tp
