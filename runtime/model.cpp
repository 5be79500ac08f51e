#include "runtime/model.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>

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

// Stacks blocks (same dtype, column count and device) row-wise into one tensor on their device.
Tensor stack_rows(const std::vector<Tensor>& blocks) {
  int64_t rows = 0;
  for (const Tensor& b : blocks) rows += b.dim(0);
  Tensor out = Tensor::empty({rows, blocks.at(0).dim(1)}, blocks[0].dtype(), blocks[0].device());
  char* dst = static_cast<char*>(out.raw());
  for (const Tensor& b : blocks) {
    copy_bytes(dst, out.device(), b.raw(), b.device(), b.nbytes());
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
  // Read in the checkpoint's own dtype (dummy weights: made on the backend's device); the
  // backend converts once on upload.
  auto rows = [&](const std::string& name, int64_t r0, int64_t n) {
    return src.read_block_for(backend, name, r0, n, 0, src.info(name).shape.at(1), src.info(name).dtype);
  };
  auto cols = [&](const std::string& name, int64_t c0, int64_t n) {
    return src.read_block_for(backend, name, 0, src.info(name).shape.at(0), c0, n, src.info(name).dtype);
  };
  auto whole = [&](const std::string& name) {
    return backend.upload_weight(read_whole(src, name, src.info(name).dtype, &backend));
  };
  auto linear = [&](const Tensor& host) { return backend.upload_linear(host, quant); };
  auto norm = [&](const std::string& name) {
    return backend.upload_norm(read_whole(src, name, src.info(name).dtype, &backend));
  };

  ModelWeights w;
  w.embedding = whole("model.embed_tokens.weight");
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.attn_norm = norm(layer_name(l, "input_layernorm.weight"));
    L.ffn_norm = norm(layer_name(l, "post_attention_layernorm.weight"));
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
  w.final_norm = norm("model.norm.weight");
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
  set_rope_frequencies(RopeFrequencies::Checkpoint);
  best_ = backend_.alloc({2}, DType::I32);
  const char* no_graphs = std::getenv("LLAMA_TP_NO_GRAPHS");
  graphs_enabled_ = !(no_graphs && *no_graphs && std::string(no_graphs) != "0");
}

void Model::set_rope_frequencies(RopeFrequencies mode) {
  std::vector<float> f = rope_inv_freq(config_);
  // A Hugging Face model cast to a 16-bit dtype with .to(dtype) casts its inv_freq buffer too,
  // so its RoPE angles use rounded frequencies; the shared reference logits were made that
  // way (without it, their error grows with the position, up to 1e-2 in bf16). A model loaded
  // with from_pretrained keeps inv_freq in float32, as llama.cpp does: RopeFrequencies::Float32.
  if (mode == RopeFrequencies::Checkpoint && (config_.dtype == DType::BF16 || config_.dtype == DType::F16))
    for (float& v : f) v = round_to_dtype(v, config_.dtype);
  inv_freq_ = backend_.alloc({int64_t(f.size())}, DType::F32);
  inv_freq_.copy_from(Tensor::from_floats(f, {int64_t(f.size())}));
  graphs_ = {};  // recorded steps read the old table
  warm_ = {};
}

void Model::set_graphs_enabled(bool on) {
  graphs_enabled_ = on;
  graphs_ = {};
  warm_ = {};
}

bool Model::graphs_in_use() const {
  // A host-staged communicator (mpi) waits for the device inside each all-reduce: not recordable.
  return graphs_enabled_ && backend_.supports_graphs() && (comm_.size() == 1 || comm_.name() == "nccl");
}

void Model::ensure_buffers(int n) {
  if (n <= buffer_tokens_) return;
  graphs_ = {};  // they use the old buffers
  warm_ = {};
  const int64_t dim = config_.dim;
  ids_ = backend_.alloc({n}, DType::I32);
  stream_[0] = backend_.alloc({n, dim}, DType::F32);
  stream_[1] = backend_.alloc({n, dim}, DType::F32);
  h_ = backend_.alloc({n, dim}, DType::F32);
  proj_ = backend_.alloc({n, dim}, DType::F32);
  qkv_ = backend_.alloc({n, attn_.qkv_width()}, DType::F32);
  att_ = backend_.alloc({n, int64_t(attn_.n_heads) * attn_.head_dim}, DType::F32);
  gate_up_ = backend_.alloc({n, 2 * plan_.ffn.count}, DType::F32);
  ffn_ = backend_.alloc({n, plan_.ffn.count}, DType::F32);
  if (!logits_.defined()) logits_ = backend_.alloc({1, plan_.vocab.count}, DType::F32);
  buffer_tokens_ = n;
}

void Model::ensure_logits(int rows) {
  // One row unless every position's logits are asked for: a 2048-token chunk of a 128k
  // vocabulary would otherwise hold 1 GiB that generation never uses.
  if (logits_.defined() && logits_.dim(0) >= rows) return;
  graphs_ = {};  // they use the old buffer
  warm_ = {};
  logits_ = backend_.alloc({rows, plan_.vocab.count}, DType::F32);
}

void Model::all_reduce(Tensor& t) {
  if (comm_.size() == 1) return;
  // Host-staged communicators read device memory with a blocking copy: finish the step's
  // queued work first. NCCL runs on the backend's own stream and needs no wait.
  if (comm_.name() != "nccl") backend_.synchronize();
  comm_.all_reduce_sum(t);
}

void Model::run_layers(const Tensor& ids, int n, int pos0) {
  Tensor stream[2] = {stream_[0].rows(0, n), stream_[1].rows(0, n)};
  Tensor h = h_.rows(0, n), proj = proj_.rows(0, n);
  Tensor qkv = qkv_.rows(0, n), att = att_.rows(0, n), gate_up = gate_up_.rows(0, n), ffn = ffn_.rows(0, n);
  const float eps = config_.norm_eps;
  const Tensor none;
  // Each sublayer's pre-norm, with the residual add of the previous sublayer's output in front
  // of it, is fused into the sublayer's first linear layer (Backend::NormedInput); the stream
  // moves to the other buffer at each add.
  int cur = 0;
  const Tensor* delta = &none;  // the layer 0 input has nothing to add
  backend_.embedding(stream[0], weights_.embedding, ids);
  for (int l = 0; l < config_.n_layers; ++l) {
    LayerWeights& L = weights_.layers[l];
    const Backend::NormedInput attn_in{stream[cur], *delta, stream[cur ^ 1], L.attn_norm, eps, h};
    backend_.norm_linear_rope_kv(qkv, kv_.k(l), kv_.v(l), attn_, pos0, inv_freq_, attn_in, L.wqkv);
    if (delta->defined()) cur ^= 1;
    backend_.attention(att, qkv, kv_.k(l), kv_.v(l), attn_, pos0);
    backend_.linear(proj, att, L.wo);
    all_reduce(proj);

    const Backend::NormedInput mlp_in{stream[cur], proj, stream[cur ^ 1], L.ffn_norm, eps, h};
    backend_.norm_linear_swiglu(ffn, gate_up, mlp_in, L.w13);
    cur ^= 1;
    backend_.linear(proj, ffn, L.w2);
    all_reduce(proj);
    delta = &proj;
  }
  current_ = cur;
}

void Model::run_head(int first, int rows, StepOutput out) {
  // The last residual add and the final norm, fused into lm_head.
  Tensor x = stream_[current_].rows(first, rows), x_out = stream_[current_ ^ 1].rows(first, rows);
  Tensor delta = proj_.rows(first, rows), h = h_.rows(first, rows), logits = logits_.rows(0, rows);
  backend_.norm_linear(logits, {x, delta, x_out, weights_.final_norm, config_.norm_eps, h}, weights_.lm_head);
  if (out == StepOutput::Argmax) {
    Tensor ids = best_.rows(0, 1);
    Tensor value = Tensor::view(best_.data<int32_t>() + 1, {1}, DType::F32, best_.device());
    backend_.argmax(ids, value, logits.rows(rows - 1, 1));
  }
}

int Model::run_chunks(const int32_t* tokens, int n_tokens, int pos0, std::vector<float>* all_logits) {
  int n = 0;
  for (int done = 0; done < n_tokens; done += n) {
    n = std::min(max_batch_tokens_, n_tokens - done);
    ensure_buffers(n);
    Tensor ids = ids_.rows(0, n);
    ids.copy_from(Tensor::view(const_cast<int32_t*>(tokens + done), {n}, DType::I32));
    run_layers(ids, n, pos0 + done);
    if (all_logits) {
      ensure_logits(n);
      run_head(0, n, StepOutput::Logits);
      const float* p = static_cast<const float*>(backend_.download(logits_.rows(0, n)));
      finish_step();
      all_logits->insert(all_logits->end(), p, p + size_t(n) * plan_.vocab.count);
    }
  }
  return n;
}

void Model::queue_step(StepOutput out) {
  run_layers(backend_.step_tokens(), 1, kStepPos);
  run_head(0, 1, out);
}

bool Model::capture_step(StepOutput out) {
  try {
    backend_.begin_capture();
    queue_step(out);
    graphs_[int(out)] = backend_.end_capture();
    return true;
  } catch (const std::exception& e) {
    backend_.abort_capture();
    set_graphs_enabled(false);
    std::cerr << "llama_tp: warning: recording the decode step as a graph failed, continuing without graphs: "
              << e.what() << std::endl;
    return false;
  }
}

void Model::decode_step(int32_t token, int pos, StepOutput out) {
  ensure_buffers(1);
  backend_.set_step(token, pos);
  const int slot = int(out);
  if (graphs_in_use()) {
    if (graphs_[slot] && backend_.replay(*graphs_[slot])) return;
    // The first step runs unrecorded; the next one records the graph and replays it.
    if (warm_[slot] && capture_step(out) && backend_.replay(*graphs_[slot])) return;
    warm_[slot] = true;
  }
  queue_step(out);
}

void Model::finish_step() {
  if (comm_.size() > 1) comm_.synchronize();
  backend_.synchronize();
}

void Model::check_positions(int n_tokens, int pos0) const {
  LLAMA_TP_CHECK(n_tokens > 0, "forward needs at least one token");
  LLAMA_TP_CHECK(pos0 >= 0 && pos0 + n_tokens <= max_seq_, "the sequence needs ", pos0 + n_tokens,
                 " positions but the context size is ", max_seq_, " (raise --ctx-size or shorten the prompt)");
}

std::vector<float> Model::forward(const int32_t* tokens, int n_tokens, int pos0, bool all_logits) {
  check_positions(n_tokens, pos0);
  const size_t vocab_local = size_t(plan_.vocab.count);
  std::vector<float> out;
  if (n_tokens == 1) {
    decode_step(tokens[0], pos0, StepOutput::Logits);
  } else {
    out.reserve(all_logits ? size_t(n_tokens) * vocab_local : vocab_local);
    const int last = run_chunks(tokens, n_tokens, pos0, all_logits ? &out : nullptr);
    if (all_logits) return out;
    // Final norm and lm_head only on the last row.
    run_head(last - 1, 1, StepOutput::Logits);
  }
  const float* p = static_cast<const float*>(backend_.download(logits_.rows(0, 1)));
  finish_step();
  out.assign(p, p + vocab_local);
  return out;
}

Model::TokenChoice Model::forward_argmax(const int32_t* tokens, int n_tokens, int pos0) {
  check_positions(n_tokens, pos0);
  if (n_tokens == 1) {
    decode_step(tokens[0], pos0, StepOutput::Argmax);
  } else {
    const int last = run_chunks(tokens, n_tokens, pos0, nullptr);
    run_head(last - 1, 1, StepOutput::Argmax);
  }
  const int32_t* p = static_cast<const int32_t*>(backend_.download(best_));
  finish_step();
  TokenChoice c;
  c.id = int32_t(plan_.vocab.begin + p[0]);
  std::memcpy(&c.logit, p + 1, sizeof(float));
  return c;
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
