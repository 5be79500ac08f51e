// ModelConfig from config.json (both RoPE forms, defaults, errors) and rope_inv_freq.
#include <gtest/gtest.h>

#include <cmath>

#include "loader_test_util.h"
#include "runtime/config.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using nlohmann::json;
using test::shared_path;

ModelConfig load_shared(const std::string& rel) {
  return ModelConfig::from_hf_dir(shared_path(rel));
}

#define SKIP_WITHOUT(rel) \
  if (shared_path(rel).empty()) GTEST_SKIP() << "missing " << test::shared_dir() << "/" << rel

TEST(Config, TinyLlama3) {
  SKIP_WITHOUT("models/tiny-llama3/config.json");
  ModelConfig c = load_shared("models/tiny-llama3");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 192);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_seq_len, 131072);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.rope.type, "llama3");
  EXPECT_EQ(c.rope.theta, 500000.0);
  EXPECT_EQ(c.rope.factor, 32.0);
  EXPECT_EQ(c.rope.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{128001});
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_NE(c.summary().find("llama3"), std::string::npos) << c.summary();
}

TEST(Config, TinyLlama2) {
  SKIP_WITHOUT("models/tiny-llama2/config.json");
  ModelConfig c = load_shared("models/tiny-llama2");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 176);
  EXPECT_EQ(c.n_layers, 3);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.max_seq_len, 2048);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.rope.type, "default");
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.dtype, DType::F16);
}

TEST(Config, TinyGqaRopeParametersForm) {
  SKIP_WITHOUT("models/tiny-gqa-f32/config.json");
  ModelConfig c = load_shared("models/tiny-gqa-f32");
  EXPECT_EQ(c.dim, 128);
  EXPECT_EQ(c.ffn_dim, 352);
  EXPECT_EQ(c.n_layers, 4);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 1024);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.rope.type, "default");
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.dtype, DType::F32);  // from "dtype", not "torch_dtype"
}

TEST(Config, Stories260KHf) {
  SKIP_WITHOUT("models/stories260K-hf/config.json");
  ModelConfig c = load_shared("models/stories260K-hf");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.dtype, DType::F32);
}

json minimal() {
  return {{"hidden_size", 64}, {"intermediate_size", 128}, {"num_hidden_layers", 2},
          {"num_attention_heads", 8}, {"vocab_size", 100}};
}

ModelConfig parse(const json& j) { return ModelConfig::from_hf_json(j.dump(), "/m/config.json"); }

TEST(Config, HfDefaults) {
  ModelConfig c = parse(minimal());
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
  EXPECT_EQ(c.max_seq_len, 2048);
  EXPECT_EQ(c.rope.type, "default");
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.dtype, DType::F32);
  json j = minimal();
  j["num_key_value_heads"] = nullptr;
  j["head_dim"] = nullptr;
  j["eos_token_id"] = nullptr;
  j["bos_token_id"] = nullptr;
  c = parse(j);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_EQ(c.bos_token_id, -1);
}

TEST(Config, EosListAndExplicitHeadDim) {
  json j = minimal();
  j["eos_token_id"] = {128001, 128008, 128009, 128008};
  j["head_dim"] = 16;
  j["num_key_value_heads"] = 2;
  ModelConfig c = parse(j);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.n_kv_heads, 2);
}

TEST(Config, GenerationConfigEosMerged) {
  test::TempDir dir;
  json j = minimal();
  j["eos_token_id"] = 2;
  test::write_file(dir.file("config.json"), j.dump());
  test::write_file(dir.file("generation_config.json"), R"({"eos_token_id": [2, 7], "bos_token_id": 1})");
  ModelConfig c = ModelConfig::from_hf_dir(dir.path());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 7}));
}

TEST(Config, RopeScalingForms) {
  json j = minimal();
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  ModelConfig c = parse(j);
  EXPECT_EQ(c.rope.type, "llama3");
  EXPECT_EQ(c.rope.factor, 8.0);
  EXPECT_EQ(c.rope.theta, 500000.0);

  j = minimal();
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 250000.0}, {"factor", 16.0},
                          {"low_freq_factor", 2.0}, {"high_freq_factor", 8.0},
                          {"original_max_position_embeddings", 4096}};
  c = parse(j);
  EXPECT_EQ(c.rope.type, "llama3");
  EXPECT_EQ(c.rope.theta, 250000.0);
  EXPECT_EQ(c.rope.factor, 16.0);
  EXPECT_EQ(c.rope.low_freq_factor, 2.0);
  EXPECT_EQ(c.rope.high_freq_factor, 8.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 4096);

  j = minimal();
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse(j).rope.type, "default");
}

TEST(Config, UnknownRopeTypesRefused) {
  for (const char* type : {"yarn", "linear", "dynamic", "longrope"}) {
    json j = minimal();
    j["rope_scaling"] = {{"rope_type", type}, {"factor", 4.0}};
    EXPECT_LLAMA_TP_ERROR(parse(j), "/m/config.json", "rope_scaling.rope_type", type);
    j = minimal();
    j["rope_parameters"] = {{"rope_type", type}, {"rope_theta", 10000.0}, {"factor", 4.0}};
    EXPECT_LLAMA_TP_ERROR(parse(j), "/m/config.json", "rope_parameters.rope_type", type);
  }
  json j = minimal();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  EXPECT_LLAMA_TP_ERROR(parse(j), "/m/config.json", "rope_scaling.low_freq_factor");
}

TEST(Config, MissingRequiredFieldNamed) {
  for (const char* field : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size"}) {
    json j = minimal();
    j.erase(field);
    EXPECT_LLAMA_TP_ERROR(parse(j), "/m/config.json", field);
  }
}

TEST(Config, WrongTypesNamed) {
  json j = minimal();
  j["hidden_size"] = "64";
  EXPECT_LLAMA_TP_ERROR(parse(j), "/m/config.json", "hidden_size", "integer");
  j = minimal();
  j["rms_norm_eps"] = "small";
  EXPECT_LLAMA_TP_ERROR(parse(j), "/m/config.json", "rms_norm_eps", "number");
  j = minimal();
  j["tie_word_embeddings"] = 1;
  EXPECT_LLAMA_TP_ERROR(parse(j), "tie_word_embeddings");
  j = minimal();
  j["eos_token_id"] = {1, "two"};
  EXPECT_LLAMA_TP_ERROR(parse(j), "eos_token_id");
  j = minimal();
  j["rope_scaling"] = "llama3";
  EXPECT_LLAMA_TP_ERROR(parse(j), "rope_scaling");
  j = minimal();
  j["torch_dtype"] = "float64";
  EXPECT_LLAMA_TP_ERROR(parse(j), "torch_dtype", "float64");
}

TEST(Config, BadValuesNamed) {
  json j = minimal();
  j["num_key_value_heads"] = 3;
  EXPECT_LLAMA_TP_ERROR(parse(j), "/m/config.json", "num_key_value_heads");
  j = minimal();
  j["hidden_size"] = 0;
  EXPECT_LLAMA_TP_ERROR(parse(j), "hidden_size");
  j = minimal();
  j["head_dim"] = 7;
  EXPECT_LLAMA_TP_ERROR(parse(j), "head_dim");
  j = minimal();
  j["attention_bias"] = true;
  EXPECT_LLAMA_TP_ERROR(parse(j), "attention_bias");
  j = minimal();
  j["hidden_act"] = "gelu";
  EXPECT_LLAMA_TP_ERROR(parse(j), "hidden_act", "gelu");
}

TEST(Config, NotJsonOrNotObject) {
  EXPECT_LLAMA_TP_ERROR(ModelConfig::from_hf_json("{\"hidden_size\": 64,", "/m/config.json"),
                        "/m/config.json", "JSON");
  EXPECT_LLAMA_TP_ERROR(ModelConfig::from_hf_json("[1, 2]", "/m/config.json"), "/m/config.json", "object");
}

TEST(Config, MissingConfigJson) {
  test::TempDir dir;
  EXPECT_LLAMA_TP_ERROR(ModelConfig::from_hf_dir(dir.path()), dir.path(), "config.json");
}

TEST(Config, BadGenerationConfigNamed) {
  test::TempDir dir;
  test::write_file(dir.file("config.json"), minimal().dump());
  test::write_file(dir.file("generation_config.json"), "{ nope");
  EXPECT_LLAMA_TP_ERROR(ModelConfig::from_hf_dir(dir.path()), dir.file("generation_config.json"));
}

// --- rope_inv_freq -------------------------------------------------------------------------

ModelConfig rope_config(int64_t head_dim, double theta) {
  ModelConfig c;
  c.head_dim = head_dim;
  c.rope.theta = theta;
  return c;
}

TEST(RopeInvFreq, DefaultExactSmallCase) {
  // theta 10000, head_dim 8: 10000^(-2i/8) = 1, 0.1, 0.01, 0.001 (powers exact in float).
  std::vector<float> inv = rope_inv_freq(rope_config(8, 10000.0));
  ASSERT_EQ(inv.size(), 4u);
  EXPECT_EQ(inv[0], 1.0f);
  EXPECT_EQ(inv[1], 1.0f / 10.0f);
  EXPECT_EQ(inv[2], 1.0f / 100.0f);
  EXPECT_EQ(inv[3], 1.0f / 1000.0f);
}

TEST(RopeInvFreq, DefaultMatchesFormula) {
  for (auto [hd, theta] : {std::pair<int64_t, double>{16, 10000.0}, {64, 10000.0}, {128, 500000.0}}) {
    std::vector<float> inv = rope_inv_freq(rope_config(hd, theta));
    ASSERT_EQ(inv.size(), size_t(hd / 2));
    for (int64_t i = 0; i < hd / 2; ++i) {
      double want = 1.0 / std::pow(theta, double(2 * i) / double(hd));
      EXPECT_NEAR(inv[size_t(i)], want, 4e-7 * want) << "head_dim " << hd << " i " << i;
    }
  }
}

// Meta's llama3 apply_scaling, in double, written independently of the library's float path.
std::vector<double> llama3_reference(int64_t hd, double theta, double factor, double low, double high,
                                     double old_ctx) {
  const double pi = 3.14159265358979323846;
  std::vector<double> out;
  for (int64_t i = 0; i < hd / 2; ++i) {
    double freq = 1.0 / std::pow(theta, double(2 * i) / double(hd));
    double wavelen = 2 * pi / freq;
    if (wavelen < old_ctx / high) {
      out.push_back(freq);
    } else if (wavelen > old_ctx / low) {
      out.push_back(freq / factor);
    } else {
      double smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back((1 - smooth) * freq / factor + smooth * freq);
    }
  }
  return out;
}

TEST(RopeInvFreq, Llama3MatchesFormula) {
  struct Case { int64_t hd; double theta, factor, low, high; int64_t old_ctx; };
  for (const Case& k : {Case{16, 500000.0, 32.0, 1.0, 4.0, 8192},   // tiny-llama3
                        Case{128, 500000.0, 8.0, 1.0, 4.0, 8192},   // Llama 3.1 8B
                        Case{64, 500000.0, 32.0, 1.0, 4.0, 8192},   // Llama 3.2 1B
                        Case{128, 10000.0, 4.0, 2.0, 8.0, 2048}}) {
    ModelConfig c = rope_config(k.hd, k.theta);
    c.rope.type = "llama3";
    c.rope.factor = k.factor;
    c.rope.low_freq_factor = k.low;
    c.rope.high_freq_factor = k.high;
    c.rope.original_max_position_embeddings = k.old_ctx;
    std::vector<float> inv = rope_inv_freq(c);
    std::vector<double> want = llama3_reference(k.hd, k.theta, k.factor, k.low, k.high, double(k.old_ctx));
    ASSERT_EQ(inv.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(inv[i], want[i], 1e-6 * want[i]) << "head_dim " << k.hd << " i " << i;
  }
}

// Bit-for-bit values printed by transformers 5.17 / torch 2.11 (CPU, float32):
// ROPE_INIT_FUNCTIONS["llama3" | "default"] for these head_dim / theta / factor settings.
TEST(RopeInvFreq, MatchesTorchBitForBit) {
  auto llama3 = [](int64_t hd, double theta, double factor) {
    ModelConfig c = rope_config(hd, theta);
    c.rope.type = "llama3";
    c.rope.factor = factor;
    c.rope.low_freq_factor = 1.0;
    c.rope.high_freq_factor = 4.0;
    c.rope.original_max_position_embeddings = 8192;
    return rope_inv_freq(c);
  };
  EXPECT_EQ(llama3(16, 500000.0, 32.0), (std::vector<float>{
      0x1p+0f, 0x1.8d276p-3f, 0x1.34119p-5f, 0x1.ddee9ep-8f, 0x1.c26c4p-12f, 0x1.1f91fp-17f,
      0x1.be2188p-20f, 0x1.5a0f4ep-22f}));
  EXPECT_EQ(llama3(64, 500000.0, 32.0), (std::vector<float>{
      0x1p+0f, 0x1.53c38cp-1f, 0x1.c2ef78p-2f, 0x1.2b3dc6p-2f, 0x1.8d276p-3f, 0x1.078d4p-3f,
      0x1.5dc95ap-4f, 0x1.d03ccep-5f, 0x1.34119p-5f, 0x1.98de92p-6f, 0x1.0f5386p-6f, 0x1.681adap-7f,
      0x1.ddee9ep-8f, 0x1.3d2804p-8f, 0x1.a4ee4p-9f, 0x1.524f36p-10f, 0x1.c26c4p-12f, 0x1.9731eep-14f,
      0x1.46831ap-16f, 0x1.b15902p-17f, 0x1.1f91fp-17f, 0x1.7da9e8p-18f, 0x1.fa8b86p-19f, 0x1.5024d6p-19f,
      0x1.be2188p-20f, 0x1.280d96p-20f, 0x1.88ec2p-21f, 0x1.04be68p-21f, 0x1.5a0f4ep-22f, 0x1.cb4a9ap-23f,
      0x1.30c94ep-23f, 0x1.94836p-24f}));
  EXPECT_EQ(rope_inv_freq(rope_config(16, 10000.0)), (std::vector<float>{
      0x1p+0f, 0x1.43d136p-2f, 0x1.99999ap-4f, 0x1.030dc6p-5f, 0x1.47ae14p-7f, 0x1.9e7c7p-9f,
      0x1.0624dep-10f, 0x1.4b96cp-12f}));
}

TEST(RopeInvFreq, Llama3TinyModelBands) {
  SKIP_WITHOUT("models/tiny-llama3/config.json");
  ModelConfig c = load_shared("models/tiny-llama3");
  std::vector<float> scaled = rope_inv_freq(c);
  ModelConfig plain = c;
  plain.rope.type = "default";
  std::vector<float> base = rope_inv_freq(plain);
  ASSERT_EQ(scaled.size(), 8u);
  // Wavelengths 2*pi*500000^(2i/16): i <= 3 are shorter than 8192/4 (kept), i = 4 (4443) is
  // in the smoothed band, i >= 5 are longer than 8192 (divided by the factor 32).
  for (int i = 0; i <= 3; ++i) EXPECT_EQ(scaled[size_t(i)], base[size_t(i)]) << i;
  EXPECT_LT(scaled[4], base[4]);
  EXPECT_GT(scaled[4], base[4] / 32.0f);
  for (int i = 5; i < 8; ++i) EXPECT_FLOAT_EQ(scaled[size_t(i)], base[size_t(i)] / 32.0f) << i;
  // The smoothed value, by hand: smooth = (8192/wavelen - 1)/3, inv*((1-smooth)/32 + smooth).
  double f4 = 1.0 / std::pow(500000.0, 0.5);
  double smooth = (8192.0 / (2 * 3.14159265358979323846 / f4) - 1.0) / 3.0;
  EXPECT_NEAR(scaled[4], f4 * ((1 - smooth) / 32.0 + smooth), 1e-6 * f4);
}

}  // namespace
}  // namespace llama_tp
