// GGUF v3 checkpoints: stories260K.gguf serves, tensor for tensor, what the llama2.c loader
// serves for stories260K.bin (q/k rows permuted the same way); its metadata gives the config;
// its vocabulary tokenizes like tok512.bin; damaged files throw naming the file.
#include <gtest/gtest.h>

#include <cstring>

#include "loader_test_util.h"
#include "runtime/gguf.h"
#include "runtime/llama2c.h"
#include "runtime/tokenizer.h"
#include "runtime/weight_source.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using test::shared_path;
using test::TempDir;
using test::write_file;

const char* kGguf = "models/stories260K/stories260K.gguf";
const char* kBin = "models/stories260K/stories260K.bin";
const char* kTok = "models/stories260K/tok512.bin";

#define SKIP_WITHOUT(rel) \
  if (shared_path(rel).empty()) GTEST_SKIP() << "missing " << test::shared_dir() << "/" << (rel)

std::vector<float> values(const WeightSource& src, const std::string& name) {
  Tensor t = read_whole(src, name, DType::F32);
  const float* p = static_cast<const float*>(t.raw());
  return std::vector<float>(p, p + t.numel());
}

TEST(Gguf, EveryTensorEqualsTheLlama2cLoaders) {
  SKIP_WITHOUT(kGguf);
  SKIP_WITHOUT(kBin);
  GgufSource g(shared_path(kGguf));
  Llama2cSource b(shared_path(kBin));
  std::vector<std::string> names = b.names();
  ASSERT_FALSE(names.empty());
  for (const std::string& name : names) {
    ASSERT_TRUE(g.has(name)) << name;
    EXPECT_EQ(g.info(name).shape, b.info(name).shape) << name;
    EXPECT_EQ(values(g, name), values(b, name)) << name;
  }
  // The .bin shares its classifier; the gguf stores a copy as output.weight.
  if (g.has("lm_head.weight")) EXPECT_EQ(values(g, "lm_head.weight"), values(b, "model.embed_tokens.weight"));
  // A block read through the permutation equals the same block of the whole tensor.
  Tensor blk = g.read_block("model.layers.2.self_attn.k_proj.weight", 5, 11, 7, 20, DType::F32);
  Tensor ref = b.read_block("model.layers.2.self_attn.k_proj.weight", 5, 11, 7, 20, DType::F32);
  EXPECT_EQ(std::memcmp(blk.raw(), ref.raw(), size_t(11 * 20 * 4)), 0);
}

TEST(Gguf, ConfigComesFromTheMetadata) {
  SKIP_WITHOUT(kGguf);
  Checkpoint ck = open_checkpoint(shared_path(kGguf));
  const ModelConfig& c = ck.config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 2048);  // llama.context_length as written by the converter
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.dtype, DType::F32);
}

TEST(Gguf, TokenizerInsideEncodesAndDecodesLikeTok512) {
  SKIP_WITHOUT(kGguf);
  SKIP_WITHOUT(kTok);
  auto g = Tokenizer::load(shared_path(kGguf));
  auto t = Tokenizer::load(shared_path(kTok));
  EXPECT_EQ(g->vocab_size(), 512);
  EXPECT_EQ(g->bos_id(), 1);
  EXPECT_EQ(g->eos_ids(), std::vector<int32_t>{2});
  EXPECT_TRUE(g->add_bos_default());
  for (const std::string text :
       {std::string("Once upon a time, there was a little girl named Lily."),
        std::string("Lily saw a big, red ball! \xF0\x9F\x98\x80 Zo\xC3\xAB"), std::string("  two  spaces\nand a line"),
        std::string("Hi</s>")}) {
    const std::vector<int32_t> ids = t->encode(text, true, false);
    EXPECT_EQ(g->encode(text, true, false), ids) << text;
    EXPECT_EQ(g->encode(text, false, true), t->encode(text, false, true)) << text;
    EXPECT_EQ(g->decode(ids), t->decode(ids)) << text;
  }
  for (int32_t id = 0; id < 512; ++id) EXPECT_EQ(g->token_bytes(id), t->token_bytes(id)) << id;
}

TEST(Gguf, TruncatedFileThrowsNamingIt) {
  SKIP_WITHOUT(kGguf);
  const std::string bytes = test::read_file(shared_path(kGguf));
  TempDir dir;
  for (size_t keep : {size_t(10), size_t(30), size_t(5000), bytes.size() - 100}) {
    const std::string p = dir.file("cut" + std::to_string(keep) + ".gguf");
    write_file(p, bytes.substr(0, keep));
    EXPECT_LLAMA_TP_ERROR(open_checkpoint(p), p);
  }
  const std::string p = dir.file("cut.gguf");
  write_file(p, bytes.substr(0, bytes.size() - 100));
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(p), p, "beyond the end of the file");
  EXPECT_LLAMA_TP_ERROR(Tokenizer::load(dir.file("cut10.gguf")), dir.file("cut10.gguf"));
}

TEST(Gguf, BadMagicVersionShapesAndQuantizedTypesThrow) {
  SKIP_WITHOUT(kGguf);
  const std::string bytes = test::read_file(shared_path(kGguf));
  TempDir dir;
  auto edited = [&](const std::string& name, size_t at, const std::string& patch) {
    std::string b = bytes;
    b.replace(at, patch.size(), patch);
    write_file(dir.file(name), b);
    return dir.file(name);
  };
  std::string p = edited("magic.gguf", 0, "GGUX");
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(p), p, "magic");
  p = edited("version.gguf", 4, std::string("\x02\0\0\0", 4));
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(p), p, "version 2");

  // Find a tensor info by name and patch its first dimension or its type.
  auto info_at = [&](const std::string& tensor) {
    const std::string key = tensor;
    size_t at = bytes.find(key);
    EXPECT_NE(at, std::string::npos);
    return at + key.size();  // n_dims (uint32), dims, type, offset
  };
  const size_t q = info_at("blk.0.attn_q.weight");
  uint64_t dim = 32;
  std::string d(8, '\0');
  std::memcpy(d.data(), &dim, 8);
  p = edited("shape.gguf", q + 4, d);  // ne0 64 -> 32
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(p), p, "self_attn.q_proj");
  uint32_t q8 = 8;
  std::string t(4, '\0');
  std::memcpy(t.data(), &q8, 4);
  p = edited("q8.gguf", q + 4 + 16, t);
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(p), p, "blk.0.attn_q.weight", "Q8_0");
  uint64_t far = uint64_t(1) << 40;
  std::memcpy(d.data(), &far, 8);
  p = edited("offset.gguf", q + 4 + 16 + 4, d);
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(p), p, "blk.0.attn_q.weight", "beyond the end");
}

}  // namespace
}  // namespace llama_tp
