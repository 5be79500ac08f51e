#include "runtime/model.h"

#include <algorithm>
#include <cstring>

#include "runtime/error.h"

namespace llama_tp {
namespace {

float round_to_dtype(float v, DType t) {
  uint16_t h;
  convert_from_f32(&v, t, &h, 1);
  float r;
  convert_to_f32(&h, t, &r, 1);
  return r;
}

std::string layer_name(int l, const char* rest) { return "model.layers." + std::to_string(l) + "." + rest; }

// Stacks host blocks (same dtype and column count) row-wise into one host tensor.
Tensor stack_rows(const std::vector<Tensor>& blocks) {
  int64_t rows = 0;
  for (const Tensor& b : blocks) rows += b.dim(0);
  Tensor out = Tensor::empty({rows, blocks.at(0).dim(1)}, blocks[0].dtype());
  char* dst = static_cast<char*>(out.raw());
  for (const Tensor& b : blocks) {
    std::memcpy(dst, b.raw(), b.nbytes());
    dst += b.nbytes();
  }
  return out;
}

}  // namespace

size_t ModelWeights::nbytes() const {
  size_t n = embedding.nbytes() + final_norm.nbytes() + lm_head.nbytes();
  for (const LayerWeights& l : layers)
    n += l.attn_norm.nbytes() + l.wqkv.nbytes() + l.wo.nbytes() + l.ffn_norm.nbytes() + l.w13.nbytes() + l.w2.nbytes();
  return n;
}

ModelWeights load_weights(const ModelConfig& c, const ShardPlan& p, const WeightSource& src, Backend& backend,
                          const QuantSpec& quant) {
  const int64_t hd = c.head_dim, dim = c.dim;
  // Read in the checkpoint's own dtype; the backend converts once on upload.
  auto rows = [&](const std::string& name, int64_t r0, int64_t n) {
    return src.read_block(name, r0, n, 0, src.info(name).shape.at(1), src.info(name).dtype);
  };
  auto cols = [&](const std::string& name, int64_t c0, int64_t n) {
    return src.read_block(name, 0, src.info(name).shape.at(0), c0, n, src.info(name).dtype);
  };
  auto whole = [&](const std::string& name) { return backend.upload_weight(read_whole(src, name, src.info(name).dtype)); };
  auto linear = [&](const Tensor& host) { return backend.upload_linear(host, quant); };

  ModelWeights w;
  w.embedding = whole("model.embed_tokens.weight");
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.attn_norm = whole(layer_name(l, "input_layernorm.weight"));
    L.ffn_norm = whole(layer_name(l, "post_attention_layernorm.weight"));
    L.wqkv = linear(stack_rows({
        rows(layer_name(l, "self_attn.q_proj.weight"), p.q_head_begin * hd, p.n_heads_local * hd),
        rows(layer_name(l, "self_attn.k_proj.weight"), p.kv_head_begin * hd, p.n_kv_heads_local * hd),
        rows(layer_name(l, "self_attn.v_proj.weight"), p.kv_head_begin * hd, p.n_kv_heads_local * hd),
    }));
    L.wo = linear(cols(layer_name(l, "self_attn.o_proj.weight"), p.q_head_begin * hd, p.n_heads_local * hd));
    L.w13 = linear(stack_rows({
        rows(layer_name(l, "mlp.gate_proj.weight"), p.ffn.begin, p.ffn.count),
        rows(layer_name(l, "mlp.up_proj.weight"), p.ffn.begin, p.ffn.count),
    }));
    L.w2 = linear(cols(layer_name(l, "mlp.down_proj.weight"), p.ffn.begin, p.ffn.count));
    w.layers.push_back(std::move(L));
  }
  w.final_norm = whole("model.norm.weight");
  const std::string head = c.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  w.lm_head = linear(rows(head, p.vocab.begin, p.vocab.count));
  (void)dim;
  return w;
}

Model::Model(ModelConfig config, ShardPlan plan, ModelWeights weights, Backend& backend, Communicator& comm,
             int max_seq, int max_batch_tokens)
    : config_(std::move(config)),
      plan_(std::move(plan)),
      weights_(std::move(weights)),
      backend_(backend),
      comm_(comm),
      max_seq_(max_seq),
      max_batch_tokens_(std::max(1, max_batch_tokens)) {
  LLAMA_TP_CHECK(max_seq > 0, "context size must be positive, got ", max_seq);
  attn_.n_heads = int(plan_.n_heads_local);
  attn_.n_kv_heads = int(plan_.n_kv_heads_local);
  attn_.head_dim = int(config_.head_dim);
  attn_.max_seq = max_seq;
  kv_ = KvCache(backend_, int(config_.n_layers), attn_.n_kv_heads, max_seq, attn_.head_dim);
  std::vector<float> f = rope_inv_freq(config_);
  // Hugging Face keeps inv_freq as a module buffer, and loading a 16-bit checkpoint casts that
  // buffer to the checkpoint's dtype: its RoPE angles use the rounded frequencies. We round
  // the same way so that logits agree with transformers' to float32 precision (the reference
  // logits show it: without this, the error grows with the position, up to 1e-2 in bf16).
  if (config_.dtype == DType::BF16 || config_.dtype == DType::F16)
    for (float& v : f) v = round_to_dtype(v, config_.dtype);
  inv_freq_ = backend_.alloc({int64_t(f.size())}, DType::F32);
  inv_freq_.copy_from(Tensor::from_floats(f, {int64_t(f.size())}));
}

void Model::ensure_buffers(int n) {
  if (n <= buffer_tokens_) return;
  const int64_t dim = config_.dim;
  ids_ = backend_.alloc({n}, DType::I32);
  x_ = backend_.alloc({n, dim}, DType::F32);
  h_ = backend_.alloc({n, dim}, DType::F32);
  proj_ = backend_.alloc({n, dim}, DType::F32);
  qkv_ = backend_.alloc({n, attn_.qkv_width()}, DType::F32);
  att_ = backend_.alloc({n, int64_t(attn_.n_heads) * attn_.head_dim}, DType::F32);
  gate_up_ = backend_.alloc({n, 2 * plan_.ffn.count}, DType::F32);
  ffn_ = backend_.alloc({n, plan_.ffn.count}, DType::F32);
  logits_ = backend_.alloc({n, plan_.vocab.count}, DType::F32);
  buffer_tokens_ = n;
}

void Model::all_reduce(Tensor& t) {
  if (comm_.size() == 1) return;
  // Host-staged communicators read device memory with a blocking copy: finish the step's
  // queued work first. NCCL runs on the backend's own stream and needs no wait.
  if (comm_.name() != "nccl") backend_.synchronize();
  comm_.all_reduce_sum(t);
}

void Model::run_chunk(const int32_t* tokens, int n, int pos0) {
  ensure_buffers(n);
  Tensor ids = ids_.rows(0, n), x = x_.rows(0, n), h = h_.rows(0, n), proj = proj_.rows(0, n);
  Tensor qkv = qkv_.rows(0, n), att = att_.rows(0, n), gate_up = gate_up_.rows(0, n), ffn = ffn_.rows(0, n);
  ids.copy_from(Tensor::view(const_cast<int32_t*>(tokens), {n}, DType::I32));
  const float eps = config_.norm_eps;

  backend_.embedding(x, weights_.embedding, ids);
  for (int l = 0; l < config_.n_layers; ++l) {
    LayerWeights& L = weights_.layers[l];
    backend_.rmsnorm(h, x, L.attn_norm, eps);
    backend_.linear(qkv, h, L.wqkv);
    backend_.rope_qk(qkv, attn_, pos0, inv_freq_);
    backend_.kv_append(kv_.k(l), kv_.v(l), qkv, attn_, pos0);
    backend_.attention(att, qkv, kv_.k(l), kv_.v(l), attn_, pos0);
    backend_.linear(proj, att, L.wo);
    all_reduce(proj);
    backend_.add(x, proj);

    backend_.rmsnorm(h, x, L.ffn_norm, eps);
    backend_.linear(gate_up, h, L.w13);
    backend_.swiglu(ffn, gate_up);
    backend_.linear(proj, ffn, L.w2);
    all_reduce(proj);
    backend_.add(x, proj);
  }
}

std::vector<float> Model::forward(const int32_t* tokens, int n_tokens, int pos0, bool all_logits) {
  LLAMA_TP_CHECK(n_tokens > 0, "forward needs at least one token");
  LLAMA_TP_CHECK(pos0 >= 0 && pos0 + n_tokens <= max_seq_, "the sequence needs ", pos0 + n_tokens,
                 " positions but the context size is ", max_seq_, " (raise --ctx-size or shorten the prompt)");
  const int64_t vocab_local = plan_.vocab.count;
  std::vector<float> out;
  out.reserve(size_t(all_logits ? n_tokens : 1) * vocab_local);
  for (int done = 0; done < n_tokens;) {
    const int n = std::min(max_batch_tokens_, n_tokens - done);
    run_chunk(tokens + done, n, pos0 + done);
    done += n;
    const bool last_chunk = done == n_tokens;
    if (!all_logits && !last_chunk) continue;
    // Final norm and lm_head only on the rows whose logits are wanted.
    const int first = all_logits ? 0 : n - 1;
    const int rows = n - first;
    Tensor x = x_.rows(first, rows), h = h_.rows(0, rows), logits = logits_.rows(0, rows);
    backend_.rmsnorm(h, x, weights_.final_norm, config_.norm_eps);
    backend_.linear(logits, h, weights_.lm_head);
    Tensor host = logits.device() == Device::CPU ? logits : logits.to(Device::CPU);
    const float* p = host.data<float>();
    out.insert(out.end(), p, p + size_t(rows) * vocab_local);
  }
  backend_.synchronize();
  return out;
}

std::vector<float> Model::gather_logits(const std::vector<float>& local, int rows) {
  const int world = comm_.size();
  if (world == 1) return local;
  const int64_t vocab = config_.vocab_size;
  std::vector<size_t> bytes(world);
  for (int r = 0; r < world; ++r) bytes[r] = size_t(rows) * plan_.vocab_by_rank[r].count * sizeof(float);
  std::vector<float> by_rank(comm_.rank() == 0 ? size_t(rows) * vocab : 0);
  comm_.gather(local.data(), local.size() * sizeof(float), by_rank.data(), bytes, 0);
  if (comm_.rank() != 0) return {};
  // by_rank is [rank][row][vocab slice]; interleave into [row][vocab].
  std::vector<float> full(size_t(rows) * vocab);
  size_t offset = 0;
  for (int r = 0; r < world; ++r) {
    const Range& v = plan_.vocab_by_rank[r];
    for (int row = 0; row < rows; ++row)
      std::memcpy(&full[size_t(row) * vocab + v.begin], &by_rank[offset + size_t(row) * v.count], v.count * sizeof(float));
    offset += size_t(rows) * v.count;
  }
  return full;
}

}  // namespace llama_tp
