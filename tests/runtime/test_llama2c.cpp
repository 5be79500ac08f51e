// llama2.c checkpoints: the legacy stories260K.bin equals the HF-layout stories260K-hf tensor
// for tensor once q/k rows are permuted; version 1 ("ak42") files written here load the same;
// the permutation turns llama2.c's adjacent-pair RoPE into HF's rotate-half RoPE; bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>

#include "parallel/single_communicator.h"
#include "kernels/argmax.h"
#include "kernels/rope.h"
#include "loader_test_util.h"
#include "runtime/llama2c.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "runtime/weight_source.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using test::shared_path;
using test::TempDir;
using test::write_file;

const char* kStories = "models/stories260K/stories260K.bin";
const char* kStoriesHf = "models/stories260K-hf";

#define SKIP_WITHOUT(rel) \
  if (shared_path(rel).empty()) GTEST_SKIP() << "missing " << test::shared_dir() << "/" << rel

// The legacy file split into its sections (written independently of the loader).
struct LegacyFile {
  int32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;  // vocab < 0: separate wcls
  std::string embed, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq, wcls;
};

LegacyFile split_legacy(const std::string& bytes) {
  LegacyFile f;
  std::memcpy(&f.dim, bytes.data(), 28);
  const size_t D = size_t(f.dim), H = size_t(f.hidden), L = size_t(f.layers), V = size_t(std::abs(f.vocab));
  const size_t hs = D / size_t(f.heads), kv = size_t(f.kv_heads) * hs;
  size_t pos = 28;
  auto take = [&](size_t floats) {
    std::string s = bytes.substr(pos, floats * 4);
    pos += floats * 4;
    return s;
  };
  f.embed = take(V * D);
  f.rms_att = take(L * D);
  f.wq = take(L * D * D);
  f.wk = take(L * D * kv);
  f.wv = take(L * D * kv);
  f.wo = take(L * D * D);
  f.rms_ffn = take(L * D);
  f.w1 = take(L * D * H);
  f.w2 = take(L * H * D);
  f.w3 = take(L * D * H);
  f.rms_final = take(D);
  f.freq = take(size_t(f.seq_len) * hs);
  if (f.vocab < 0) f.wcls = take(V * D);
  EXPECT_EQ(pos, bytes.size()) << "the test's own reading of the legacy layout is off";
  return f;
}

std::string legacy_bytes(const LegacyFile& f) {
  std::string out(28, '\0');
  std::memcpy(out.data(), &f.dim, 28);
  return out + f.embed + f.rms_att + f.wq + f.wk + f.wv + f.wo + f.rms_ffn + f.w1 + f.w2 + f.w3 +
         f.rms_final + f.freq + f.wcls;
}

// As llama2.c's export.py version1_export writes it.
std::string version1_bytes(const LegacyFile& f) {
  std::string out(256, '\0');
  const uint32_t magic = 0x616b3432;
  const int32_t version = 1;
  int32_t params[7] = {f.dim, f.hidden, f.layers, f.heads, f.kv_heads, std::abs(f.vocab), f.seq_len};
  std::memcpy(out.data(), &magic, 4);
  std::memcpy(out.data() + 4, &version, 4);
  std::memcpy(out.data() + 8, params, 28);
  out[36] = f.vocab > 0 ? 1 : 0;  // shared classifier
  return out + f.rms_att + f.rms_ffn + f.rms_final + f.embed + f.wq + f.wk + f.wv + f.wo + f.w1 +
         f.w2 + f.w3 + f.wcls;
}

void expect_same_tensors(const WeightSource& a, const std::vector<std::string>& names_a,
                         const WeightSource& b, const std::vector<std::string>& names_b) {
  ASSERT_EQ(names_a, names_b);
  for (const std::string& name : names_a) {
    ASSERT_EQ(a.info(name).shape, b.info(name).shape) << name;
    Tensor ta = read_whole(a, name, DType::F32), tb = read_whole(b, name, DType::F32);
    ASSERT_EQ(std::memcmp(ta.raw(), tb.raw(), ta.nbytes()), 0) << name << " differs";
  }
}

TEST(Llama2c, LegacyStoriesMatchesHfLayoutExactly) {
  SKIP_WITHOUT(kStories);
  SKIP_WITHOUT(std::string(kStoriesHf) + "/model.safetensors");
  Llama2cSource bin(shared_path(kStories));
  EXPECT_EQ(bin.version(), 0);
  const ModelConfig& c = bin.config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.rope.type, "default");
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(bin.has("lm_head.weight"));

  auto hf = SafetensorsSource::open_dir(shared_path(kStoriesHf));
  expect_same_tensors(bin, bin.names(), *hf, hf->names());

  Checkpoint ck = open_checkpoint(shared_path(kStories));
  EXPECT_EQ(ck.config.n_layers, 5);
  EXPECT_EQ(ck.path, shared_path(kStories));
}

TEST(Llama2c, PermutationRows) {
  EXPECT_EQ(llama2c_rope_row(0, 8), 0);
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < 16; ++r) rows.push_back(llama2c_rope_row(r, 8));
  EXPECT_EQ(rows, (std::vector<int64_t>{0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15}));
}

// q and k through llama2.c's RoPE (adjacent pairs, as run.c) and, permuted, through HF's
// rotate-half RoPE (kernels::rope_cpu) agree row for row, so attention scores are identical.
TEST(Llama2c, PermutedRotateHalfEqualsAdjacentPairRope) {
  SKIP_WITHOUT(kStories);
  const std::string bytes = test::read_file(shared_path(kStories));
  LegacyFile raw = split_legacy(bytes);
  Llama2cSource bin(shared_path(kStories));
  const ModelConfig& c = bin.config();
  const int hs = int(c.head_dim), D = int(c.dim);
  const std::vector<float> x = test::random_floats(size_t(D), 7);
  const std::vector<float> inv = rope_inv_freq(c);
  const int layer = 3;
  for (const char* which : {"q", "k"}) {
    const bool is_q = which[0] == 'q';
    const int rows = is_q ? int(c.n_heads) * hs : int(c.n_kv_heads) * hs;
    const float* w_raw = reinterpret_cast<const float*>((is_q ? raw.wq : raw.wk).data()) + size_t(layer) * rows * D;
    Tensor w_hf = read_whole(bin, "model.layers.3.self_attn." + std::string(which) + "_proj.weight", DType::F32);
    for (int32_t pos : {0, 1, 17, 300}) {
      std::vector<float> a(static_cast<size_t>(rows)), b(static_cast<size_t>(rows));
      for (int r = 0; r < rows; ++r)
        for (int i = 0; i < D; ++i) {
          a[size_t(r)] += w_raw[size_t(r) * D + i] * x[size_t(i)];
          b[size_t(r)] += w_hf.data<float>()[size_t(r) * D + i] * x[size_t(i)];
        }
      for (int i = 0; i < rows; i += 2) {  // run.c
        float freq = 1.0f / std::pow(10000.0f, float(i % hs) / float(hs));
        float val = float(pos) * freq, fcr = std::cos(val), fci = std::sin(val);
        float v0 = a[size_t(i)], v1 = a[size_t(i) + 1];
        a[size_t(i)] = v0 * fcr - v1 * fci;
        a[size_t(i) + 1] = v0 * fci + v1 * fcr;
      }
      kernels::rope_cpu(b.data(), 1, rows / hs, hs, rows, &pos, inv.data());
      for (int r = 0; r < rows; ++r)
        EXPECT_NEAR(b[size_t(r)], a[size_t(llama2c_rope_row(r, hs))], 2e-5f)
            << which << " row " << r << " position " << pos;
    }
  }
}

TEST(Llama2c, Version1LoadsLikeLegacy) {
  SKIP_WITHOUT(kStories);
  LegacyFile raw = split_legacy(test::read_file(shared_path(kStories)));
  TempDir dir;
  write_file(dir.file("stories260K-v1.bin"), version1_bytes(raw));
  Llama2cSource v0(shared_path(kStories));
  Llama2cSource v1(dir.file("stories260K-v1.bin"));
  EXPECT_EQ(v1.version(), 1);
  EXPECT_EQ(v1.config().summary(), v0.config().summary());
  expect_same_tensors(v0, v0.names(), v1, v1.names());
  EXPECT_EQ(open_checkpoint(dir.file("stories260K-v1.bin")).config.n_kv_heads, 4);
}

TEST(Llama2c, SeparateClassifierBothVersions) {
  SKIP_WITHOUT(kStories);
  LegacyFile raw = split_legacy(test::read_file(shared_path(kStories)));
  raw.vocab = -raw.vocab;
  std::vector<float> wcls = test::random_floats(size_t(512 * 64), 3);
  raw.wcls = test::float_bytes(wcls);
  TempDir dir;
  write_file(dir.file("legacy.bin"), legacy_bytes(raw));
  write_file(dir.file("v1.bin"), version1_bytes(raw));
  for (const char* name : {"legacy.bin", "v1.bin"}) {
    Llama2cSource src(dir.file(name));
    EXPECT_FALSE(src.config().tie_embeddings) << name;
    EXPECT_EQ(src.config().vocab_size, 512) << name;
    ASSERT_TRUE(src.has("lm_head.weight")) << name;
    Tensor lm = read_whole(src, "lm_head.weight", DType::F32);
    EXPECT_EQ(lm.shape(), (std::vector<int64_t>{512, 64}));
    EXPECT_EQ(std::memcmp(lm.raw(), wcls.data(), wcls.size() * 4), 0) << name;
    Checkpoint ck = open_checkpoint(dir.file(name));
    EXPECT_TRUE(ck.weights->has("lm_head.weight"));
  }
}

TEST(Llama2c, BlockReadsOfPermutedRows) {
  SKIP_WITHOUT(kStories);
  Llama2cSource bin(shared_path(kStories));
  const std::string name = "model.layers.1.self_attn.k_proj.weight";
  Tensor whole = read_whole(bin, name, DType::F32);
  Tensor part = bin.read_block(name, 8, 16, 10, 30, DType::F32);
  for (int r = 0; r < 16; ++r)
    for (int col = 0; col < 30; ++col)
      ASSERT_EQ(part.data<float>()[r * 30 + col], whole.data<float>()[(8 + r) * 64 + 10 + col]);
  Tensor bf = bin.read_block(name, 8, 16, 10, 30, DType::BF16);
  for (int i = 0; i < 16 * 30; ++i)
    ASSERT_EQ(bf.data<uint16_t>()[i], f32_to_bf16(part.data<float>()[i]));
  EXPECT_LLAMA_TP_ERROR(bin.read_block(name, 30, 4, 0, 64, DType::F32), name, shared_path(kStories));
  EXPECT_LLAMA_TP_ERROR(bin.info("lm_head.weight"), "lm_head.weight", shared_path(kStories));
}

// --- bad files ---------------------------------------------------------------------------------

TEST(Llama2cErrors, TruncatedFile) {
  SKIP_WITHOUT(kStories);
  const std::string bytes = test::read_file(shared_path(kStories));
  TempDir dir;
  const std::string p = dir.file("stories260K.bin");
  write_file(p, bytes.substr(0, 500000));
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, "500000 bytes", std::to_string(bytes.size()), "truncated");
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(p), p, "truncated");
  write_file(p, bytes.substr(0, 12));
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, "12 bytes");
  write_file(p, bytes + "xxxx");
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, std::to_string(bytes.size() + 4), "longer");
  LegacyFile raw = split_legacy(bytes);
  write_file(p, version1_bytes(raw).substr(0, 300000));
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, "300000 bytes", "version 1", "truncated");
  write_file(p, version1_bytes(raw).substr(0, 100));
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, "256-byte header");
}

TEST(Llama2cErrors, BadHeaders) {
  TempDir dir;
  const std::string p = dir.file("bad.bin");
  int32_t header[7] = {64, 172, 5, 0, 4, 512, 512};  // n_heads 0
  write_file(p, std::string(reinterpret_cast<char*>(header), 28) + std::string(4096, '\0'));
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, "n_heads 0");
  int32_t odd[7] = {60, 172, 5, 4, 4, 512, 512};  // dim 60 / 4 heads = head size 15
  write_file(p, std::string(reinterpret_cast<char*>(odd), 28) + std::string(4096, '\0'));
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, "odd head size");
  int32_t gqa[7] = {64, 172, 5, 8, 3, 512, 512};
  write_file(p, std::string(reinterpret_cast<char*>(gqa), 28) + std::string(4096, '\0'));
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, "n_kv_heads");
  // Version 2 (int8) and unknown versions.
  std::string v2(256, '\0');
  const uint32_t magic = 0x616b3432;
  int32_t version = 2;
  std::memcpy(v2.data(), &magic, 4);
  std::memcpy(v2.data() + 4, &version, 4);
  write_file(p, v2);
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, "version 2");
  version = 7;
  std::memcpy(v2.data() + 4, &version, 4);
  write_file(p, v2);
  EXPECT_LLAMA_TP_ERROR(Llama2cSource{p}, p, "version 7");
}


// --- version 2 (int8 Q8_0) ---------------------------------------------------------------------

// One tensor as export.py's quantize_q80 quantizes it: groups of `group` values of the flattened
// tensor, scale = max|w| / 127 (float32), q = round-half-even(w / scale). Written independently of
// kernels/quantize.cpp.
void q80(const float* w, size_t n, int group, std::string& q_out, std::string& s_out) {
  for (size_t g = 0; g < n / size_t(group); ++g) {
    float wmax = 0;
    for (int i = 0; i < group; ++i) wmax = std::max(wmax, std::fabs(w[g * group + size_t(i)]));
    const float scale = wmax / 127.0f;
    for (int i = 0; i < group; ++i) q_out.push_back(char(int8_t(std::nearbyint(w[g * group + size_t(i)] / scale))));
    s_out.append(reinterpret_cast<const char*>(&scale), 4);
  }
}

// As llama2.c's export.py version2_export writes it (group size 64, halved until it divides
// dim): header, float32 norms, then every matrix (per layer) as int8 values and float32 scales.
std::string version2_bytes(const LegacyFile& f, int group = 64) {
  while (f.dim % group != 0) group /= 2;
  std::string out(256, '\0');
  const uint32_t magic = 0x616b3432;
  const int32_t version = 2;
  int32_t params[7] = {f.dim, f.hidden, f.layers, f.heads, f.kv_heads, std::abs(f.vocab), f.seq_len};
  std::memcpy(out.data(), &magic, 4);
  std::memcpy(out.data() + 4, &version, 4);
  std::memcpy(out.data() + 8, params, 28);
  out[36] = f.vocab > 0 ? 1 : 0;  // shared classifier
  std::memcpy(out.data() + 37, &group, 4);
  out += f.rms_att + f.rms_ffn + f.rms_final;
  auto put = [&](const std::string& all_layers, int layers) {
    const size_t per = all_layers.size() / 4 / size_t(layers);
    for (int l = 0; l < layers; ++l) {
      std::string q, s;
      q80(reinterpret_cast<const float*>(all_layers.data()) + size_t(l) * per, per, group, q, s);
      out += q + s;
    }
  };
  put(f.embed, 1);
  for (const std::string* t : {&f.wq, &f.wk, &f.wv, &f.wo, &f.w1, &f.w2, &f.w3}) put(*t, f.layers);
  if (!f.wcls.empty()) put(f.wcls, 1);
  return out;
}

struct Greedy {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits;  // at each step
};

// Greedy decoding from BOS on the CPU backend.
Greedy greedy(const Checkpoint& ck, const QuantSpec& quant, int steps) {
  auto backend = make_cpu_backend();
  SingleCommunicator comm;
  ShardPlan plan = ShardPlan::make(ck.config, 1, 0);
  Model model(ck.config, plan, load_weights(ck.config, plan, *ck.weights, *backend, quant), *backend, comm, steps + 1);
  Greedy g;
  int32_t next = int32_t(ck.config.bos_token_id);
  for (int pos = 0; pos < steps; ++pos) {
    g.logits.push_back(model.forward(&next, 1, pos, false));
    next = kernels::argmax_cpu(g.logits.back().data(), int(g.logits.back().size()));
    g.ids.push_back(next);
  }
  return g;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb);
}

TEST(Llama2cV2, LoadsTheQuantizedValuesOfExportPy) {
  SKIP_WITHOUT(kStories);
  LegacyFile raw = split_legacy(test::read_file(shared_path(kStories)));
  TempDir dir;
  const std::string bytes = version2_bytes(raw);
  write_file(dir.file("stories260K-q80.bin"), bytes);
  Llama2cSource v0(shared_path(kStories));
  Llama2cSource v2(dir.file("stories260K-q80.bin"));
  EXPECT_EQ(v2.version(), 2);
  EXPECT_EQ(v2.group_size(), 64);
  EXPECT_EQ(v2.config().summary(), v0.config().summary());
  ASSERT_EQ(v2.names(), v0.names());
  for (const std::string& name : v0.names()) {
    Tensor a = read_whole(v0, name, DType::F32), b = read_whole(v2, name, DType::F32);
    ASSERT_EQ(a.shape(), b.shape()) << name;
    if (a.ndim() == 1) {  // norms stay float32: bit for bit
      EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << name;
      continue;
    }
    // Each value within half a step of the original; steps are max|w| / 127 of 64 values.
    double max_err = 0, max_abs = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      max_err = std::max(max_err, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
      max_abs = std::max(max_abs, double(std::fabs(a.data<float>()[i])));
    }
    EXPECT_LE(max_err, 0.5 * max_abs / 127 * 1.0001) << name;
    EXPECT_GT(max_err, 0) << name << " should differ from float32 by the rounding";
  }
  // Layer 0's gate_proj (w1, not permuted): its bytes in the file are q then scales.
  const size_t norms = size_t(2 * raw.layers + 1) * size_t(raw.dim) * 4;
  const size_t embed = size_t(512 * 64) * 17 / 16;  // int8 + one 4-byte scale per 64
  const size_t q_layer = size_t(64 * 64) * 17 / 16, k_layer = size_t(32 * 64) * 17 / 16, o_layer = q_layer;
  const size_t w1_0 = 256 + norms + embed + 5 * (q_layer + 2 * k_layer + o_layer);
  Tensor w1 = read_whole(v2, "model.layers.0.mlp.gate_proj.weight", DType::F32);
  const int8_t* q = reinterpret_cast<const int8_t*>(bytes.data() + w1_0);
  float scale0;
  std::memcpy(&scale0, bytes.data() + w1_0 + 172 * 64, 4);
  for (int i = 0; i < 64; ++i) ASSERT_EQ(w1.data<float>()[i], float(q[i]) * scale0) << i;
  // Quantizing the served values again with the file's group size gives the file's int8 back
  // (why --quant auto keeps a version 2 file's own group size).
  auto backend = make_cpu_backend();
  LinearWeight again = backend->upload_linear(w1, QuantSpec::int8_groups(64));
  EXPECT_EQ(std::memcmp(again.values.raw(), q, 172 * 64), 0);

  EXPECT_LLAMA_TP_ERROR(Llama2cSource{[&] {
                          const std::string p = dir.file("cut.bin");
                          write_file(p, bytes.substr(0, bytes.size() - 100));
                          return p;
                        }()},
                        "version 2", "truncated");
}

TEST(Llama2cV2, GeneratesLikeTheFloatModel) {
  SKIP_WITHOUT(kStories);
  LegacyFile raw = split_legacy(test::read_file(shared_path(kStories)));
  TempDir dir;
  write_file(dir.file("stories260K-q80.bin"), version2_bytes(raw));
  Checkpoint f32 = open_checkpoint(shared_path(kStories));
  Checkpoint q80 = open_checkpoint(dir.file("stories260K-q80.bin"));
  const int steps = 40;
  const Greedy want = greedy(f32, QuantSpec::none(), steps);
  // Dequantized to float32, and kept int8 (quantized again with the file's group size).
  for (QuantSpec spec : {QuantSpec::none(), QuantSpec::int8_groups(64)}) {
    const Greedy got = greedy(q80, spec, steps);
    EXPECT_EQ(std::vector<int32_t>(got.ids.begin(), got.ids.begin() + 10),
              std::vector<int32_t>(want.ids.begin(), want.ids.begin() + 10))
        << spec.describe();
    // Logits along the float model's path stay close until the texts part.
    size_t same = 0;
    while (same < got.ids.size() && got.ids[same] == want.ids[same]) ++same;
    for (size_t i = 0; i <= std::min(same, got.ids.size() - 1); ++i)
      EXPECT_GE(cosine(got.logits[i], want.logits[i]), 0.99) << spec.describe() << " step " << i;
    std::cout << "[ q80 ] " << spec.describe() << ": first " << same << " of " << steps
              << " greedy tokens equal the float32 model's\n";
  }
}

}  // namespace
}  // namespace llama_tp
