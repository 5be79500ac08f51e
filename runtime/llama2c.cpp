#include "runtime/llama2c.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "runtime/error.h"

namespace llama_tp {

namespace {

constexpr uint32_t kMagic = 0x616b3432;  // "ak42"
constexpr size_t kV1HeaderBytes = 256;
constexpr int64_t kMaxDim = int64_t(1) << 24;  // far above any model; keeps sizes from overflowing

struct Header {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

int32_t read_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

std::string describe_header(const Header& h) {
  return detail::concat("dim ", h.dim, ", hidden_dim ", h.hidden_dim, ", n_layers ", h.n_layers,
                        ", n_heads ", h.n_heads, ", n_kv_heads ", h.n_kv_heads, ", vocab_size ",
                        h.vocab_size, ", seq_len ", h.seq_len);
}

}  // namespace

int64_t llama2c_rope_row(int64_t hf_row, int64_t head_dim) {
  const int64_t head = hf_row / head_dim, j = hf_row % head_dim, half = head_dim / 2;
  return head * head_dim + (j < half ? 2 * j : 2 * (j - half) + 1);
}

Llama2cSource::Llama2cSource(const std::string& path) : file_(path) {
  const uint8_t* data = file_.data();
  const size_t size = file_.size();
  LLAMA_TP_CHECK(size >= 28, path, " is only ", size,
                 " bytes long, too short for a llama2.c checkpoint (its header alone is 28 bytes).");

  Header h{};
  bool shared = false;
  size_t data_start = 0;
  uint32_t magic;
  std::memcpy(&magic, data, 4);
  if (magic == kMagic) {
    LLAMA_TP_CHECK(size >= kV1HeaderBytes, path, " starts with the llama2.c \"ak42\" magic but is only ",
                   size, " bytes long, shorter than its 256-byte header; the file is truncated.");
    const int32_t version = read_i32(data + 4);
    LLAMA_TP_CHECK(version == 1 || version == 2, path, " is a llama2.c checkpoint of unknown version ", version,
                   "; llama_tp loads the legacy format, version 1 (float32) and version 2 (int8).");
    version_ = version;
    std::memcpy(&h, data + 8, sizeof h);
    shared = data[8 + sizeof h] != 0;
    h.vocab_size = std::abs(h.vocab_size);
    data_start = kV1HeaderBytes;
    if (version_ == 2) {
      group_size_ = read_i32(data + 8 + sizeof h + 1);  // right after the shared-classifier byte
      LLAMA_TP_CHECK(group_size_ > 0 && group_size_ <= kMaxDim, path, " is a llama2.c version 2 checkpoint with group size ",
                     group_size_, " in its header; it must be a positive number (export.py writes 64 or less).");
    }
  } else {
    version_ = 0;
    std::memcpy(&h, data, sizeof h);
    shared = h.vocab_size > 0;  // legacy: a negative vocab_size means a separate classifier
    h.vocab_size = std::abs(h.vocab_size);
    data_start = sizeof h;
  }

  const char* format = version_ == 0 ? "legacy format" : version_ == 1 ? "version 1" : "version 2";
  auto bad = [&](const char* why) {
    LLAMA_TP_FAIL(path, " is not a valid llama2.c checkpoint: its ", format, " header (", describe_header(h), ") ",
                  why, ".");
  };
  for (int32_t v : {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len})
    if (v <= 0 || v > kMaxDim) bad("has a size that is not a positive number of plausible magnitude");
  if (h.dim % h.n_heads != 0) bad("has dim not divisible by n_heads");
  if (h.n_heads % h.n_kv_heads != 0) bad("has n_heads not divisible by n_kv_heads");
  const int64_t hs = h.dim / h.n_heads;
  if (hs % 2 != 0) bad("gives an odd head size, which RoPE cannot rotate");

  // Lay the tensors out in the order the exporter wrote them.
  const int64_t dim = h.dim, hidden = h.hidden_dim, L = h.n_layers, vocab = h.vocab_size;
  const int64_t q_rows = int64_t(h.n_heads) * hs, kv_rows = int64_t(h.n_kv_heads) * hs;
  unsigned __int128 offset = data_start;
  // Version 2 stores matrices as int8 values followed by their float32 scales.
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool permuted = false) {
    const bool q8 = version_ == 2 && shape.size() == 2;
    unsigned __int128 numel = 1;
    for (int64_t d : shape) numel *= uint64_t(d);
    const unsigned __int128 start = offset;
    Entry e{size_t(offset), std::move(shape), permuted, q8, 0};
    if (q8) {
      LLAMA_TP_CHECK(numel % unsigned(group_size_) == 0, path, ": tensor ", name, " of shape ",
                     shape_to_string(e.shape), " is not a whole number of groups of ", group_size_,
                     " values, so this is not a valid llama2.c version 2 checkpoint.");
      e.scale_offset = size_t(offset + numel);
      offset += numel + numel / unsigned(group_size_) * 4;
    } else {
      offset += numel * 4;
    }
    if (start <= size) entries_[name] = std::move(e);
  };
  auto per_layer = [&](const char* suffix, std::vector<int64_t> shape, bool permuted = false) {
    for (int64_t l = 0; l < L; ++l)
      add("model.layers." + std::to_string(l) + "." + suffix, shape, permuted);
  };
  auto skip = [&](int64_t floats) { offset += (unsigned __int128)(uint64_t(floats)) * 4; };

  const char* kRmsAtt = "input_layernorm.weight";
  const char* kRmsFfn = "post_attention_layernorm.weight";
  if (version_ == 0) {
    add("model.embed_tokens.weight", {vocab, dim});
    per_layer(kRmsAtt, {dim});
  } else {  // versions 1 and 2 (whose matrices, from the embedding on, are int8)
    per_layer(kRmsAtt, {dim});
    per_layer(kRmsFfn, {dim});
    add("model.norm.weight", {dim});
    add("model.embed_tokens.weight", {vocab, dim});
  }
  per_layer("self_attn.q_proj.weight", {q_rows, dim}, true);
  per_layer("self_attn.k_proj.weight", {kv_rows, dim}, true);
  per_layer("self_attn.v_proj.weight", {kv_rows, dim});
  per_layer("self_attn.o_proj.weight", {dim, q_rows});
  if (version_ == 0) per_layer(kRmsFfn, {dim});
  per_layer("mlp.gate_proj.weight", {hidden, dim});  // w1
  per_layer("mlp.down_proj.weight", {dim, hidden});  // w2
  per_layer("mlp.up_proj.weight", {hidden, dim});    // w3
  if (version_ == 0) {
    add("model.norm.weight", {dim});
    skip(2 * int64_t(h.seq_len) * hs / 2);  // freq_cis_real, freq_cis_imag: recomputed instead
  }
  if (!shared) add("lm_head.weight", {vocab, dim});

  if (offset != size) {
    const uint64_t expected = offset > UINT64_MAX ? UINT64_MAX : uint64_t(offset);
    LLAMA_TP_FAIL(path, " is ", size, " bytes but its llama2.c header (", format, ", ",
                  describe_header(h), shared ? ", shared classifier" : ", separate classifier",
                  ") implies ", expected, " bytes; the file is ",
                  size < expected ? "truncated" : "longer than the model it describes",
                  " (re-download or re-export it).");
  }

  config_.dim = dim;
  config_.ffn_dim = hidden;
  config_.n_layers = L;
  config_.n_heads = h.n_heads;
  config_.n_kv_heads = h.n_kv_heads;
  config_.head_dim = hs;
  config_.vocab_size = vocab;
  config_.max_seq_len = h.seq_len;
  config_.norm_eps = 1e-5f;  // llama2.c's run.c
  config_.tie_embeddings = shared;
  config_.rope = RopeConfig{};  // theta 10000, no scaling
  config_.bos_token_id = 1;
  config_.eos_token_ids = {2};
  config_.dtype = DType::F32;
  config_.validate(path);
}

std::vector<std::string> Llama2cSource::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

bool Llama2cSource::has(const std::string& name) const { return entries_.count(name) != 0; }

const Llama2cSource::Entry& Llama2cSource::entry(const std::string& name) const {
  auto it = entries_.find(name);
  LLAMA_TP_CHECK(it != entries_.end(), "tensor ", name, " is not in llama2.c checkpoint ", path(), ".");
  return it->second;
}

TensorInfo Llama2cSource::info(const std::string& name) const {
  return TensorInfo{DType::F32, entry(name).shape};
}

namespace {

// A block of a version 2 (Q8_0) matrix, dequantized: value = q * scale[flat index / group].
Tensor read_q8_block(const uint8_t* q, const uint8_t* scales, int64_t group, const StoredTensor& t,
                     const std::string& name, const std::string& where, int64_t row0, int64_t n_rows,
                     int64_t col0, int64_t n_cols, DType out) {
  const int64_t rows = t.shape.at(0), cols = t.shape.at(1);
  LLAMA_TP_CHECK(row0 >= 0 && n_rows >= 0 && row0 <= rows && n_rows <= rows - row0 && col0 >= 0 && n_cols >= 0 &&
                     col0 <= cols && n_cols <= cols - col0,
                 "cannot read rows [", row0, ", ", row0 + n_rows, ") x columns [", col0, ", ", col0 + n_cols,
                 ") of tensor ", name, " in ", where, ": its shape is ", shape_to_string(t.shape), ".");
  Tensor result = Tensor::empty({n_rows, n_cols}, out);
  std::vector<float> row(static_cast<size_t>(n_cols));
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t stored_row = t.row_map ? t.row_map(row0 + r) : row0 + r;
    const int64_t first = stored_row * cols + col0;
    for (int64_t j = 0; j < n_cols; ++j) {
      const int64_t flat = first + j;
      float scale;
      std::memcpy(&scale, scales + size_t(flat / group) * 4, 4);
      row[size_t(j)] = float(int8_t(q[flat])) * scale;
    }
    convert_elements(row.data(), DType::F32, static_cast<uint8_t*>(result.raw()) + size_t(r * n_cols) * dtype_size(out),
                     out, size_t(n_cols));
  }
  return result;
}

}  // namespace

Tensor Llama2cSource::read_block(const std::string& name, int64_t row0, int64_t n_rows, int64_t col0,
                                 int64_t n_cols, DType out) const {
  const Entry& e = entry(name);
  StoredTensor t;
  t.data = file_.data() + e.offset;
  t.dtype = DType::F32;
  t.shape = e.shape;
  if (e.rope_permuted) {
    const int64_t hd = config_.head_dim;
    t.row_map = [hd](int64_t r) { return llama2c_rope_row(r, hd); };
  }
  if (e.q8)
    return read_q8_block(file_.data() + e.offset, file_.data() + e.scale_offset, group_size_, t, name, path(), row0,
                         n_rows, col0, n_cols, out);
  return read_stored_block(t, name, path(), row0, n_rows, col0, n_cols, out);
}

}  // namespace llama_tp
