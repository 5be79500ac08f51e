// Safetensors reading (single, sharded, block reads) and every malformed-file error, plus the
// checkpoint-level checks of tensors against config.json.
#include <gtest/gtest.h>

#include <cstring>

#include "loader_test_util.h"
#include "runtime/safetensors.h"
#include "runtime/weight_source.h"
#include "test_util.h"

namespace llama_tp {
namespace {

using nlohmann::json;
using test::shared_path;
using test::TempDir;
using test::write_file;

#define SKIP_WITHOUT(rel) \
  if (shared_path(rel).empty()) GTEST_SKIP() << "missing " << test::shared_dir() << "/" << rel

std::vector<uint16_t> halves(const Tensor& t) {
  return std::vector<uint16_t>(t.data<uint16_t>(), t.data<uint16_t>() + t.numel());
}

TEST(Safetensors, ShardedTinyLlama2) {
  SKIP_WITHOUT("models/tiny-llama2/model.safetensors.index.json");
  const std::string dir = shared_path("models/tiny-llama2");
  auto src = SafetensorsSource::open_dir(dir);
  EXPECT_EQ(src->names().size(), 3u * 9 + 3);
  EXPECT_NE(src->describe("lm_head.weight").find("model-00002-of-00003.safetensors"), std::string::npos);
  EXPECT_NE(src->describe("model.embed_tokens.weight").find("model-00001-of-00003.safetensors"), std::string::npos);
  EXPECT_NE(src->describe("model.layers.2.mlp.up_proj.weight").find("model-00003-of-00003.safetensors"),
            std::string::npos);
  TensorInfo info = src->info("model.embed_tokens.weight");
  EXPECT_EQ(info.dtype, DType::F16);
  EXPECT_EQ(info.shape, (std::vector<int64_t>{32000, 64}));

  // One tensor from each shard, read whole.
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight", "model.layers.1.self_attn.o_proj.weight"}) {
    Tensor t = read_whole(*src, name, DType::F32);
    EXPECT_EQ(t.shape(), src->info(name).shape) << name;
    double sum = 0;
    for (float v : t.to_floats()) sum += std::fabs(v);
    EXPECT_GT(sum, 0) << name << " read as all zeros";
  }

  Checkpoint ck = open_checkpoint(dir);
  EXPECT_EQ(ck.config.n_layers, 3);
  EXPECT_TRUE(ck.weights->has("lm_head.weight"));
}

TEST(Safetensors, AllSharedModelsOpen) {
  for (const char* m : {"tiny-llama3", "tiny-llama2", "tiny-gqa-f32", "stories260K-hf"}) {
    std::string rel = std::string("models/") + m;
    if (shared_path(rel + "/config.json").empty()) continue;
    Checkpoint ck = open_checkpoint(shared_path(rel));
    EXPECT_EQ(ck.weights->has("lm_head.weight"), !ck.config.tie_embeddings) << m;
  }
}

// Every block of a 2-D tensor equals the same block of the whole tensor, in every output dtype.
void check_blocks(const WeightSource& src, const std::string& name) {
  TensorInfo info = src.info(name);
  ASSERT_EQ(info.shape.size(), 2u);
  const int64_t rows = info.shape[0], cols = info.shape[1];
  for (DType out : {DType::F32, DType::F16, DType::BF16}) {
    Tensor whole = read_whole(src, name, out);
    ASSERT_EQ(whole.shape(), info.shape);
    const size_t es = dtype_size(out);
    struct Block { int64_t r0, nr, c0, nc; };
    for (Block b : {Block{0, rows, 0, cols}, Block{rows / 3, rows / 4 + 1, 0, cols},  // row slice
                    Block{0, rows, cols / 4, cols / 2},                               // column slice
                    Block{rows - 3, 3, cols - 5, 5}, Block{7, 0, 0, cols}}) {
      Tensor part = src.read_block(name, b.r0, b.nr, b.c0, b.nc, out);
      ASSERT_EQ(part.shape(), (std::vector<int64_t>{b.nr, b.nc}));
      ASSERT_EQ(part.dtype(), out);
      for (int64_t r = 0; r < b.nr; ++r) {
        const uint8_t* want = whole.data<uint8_t>() + (size_t(b.r0 + r) * cols + size_t(b.c0)) * es;
        const uint8_t* got = part.data<uint8_t>() + size_t(r) * size_t(b.nc) * es;
        ASSERT_EQ(std::memcmp(want, got, size_t(b.nc) * es), 0)
            << name << " rows " << b.r0 << "+" << b.nr << " cols " << b.c0 << "+" << b.nc << " as "
            << dtype_name(out) << ", row " << r;
      }
    }
  }
}

TEST(Safetensors, Bf16BlocksMatchWhole) {
  SKIP_WITHOUT("models/tiny-llama3/model.safetensors");
  auto src = SafetensorsSource::open_dir(shared_path("models/tiny-llama3"));
  EXPECT_EQ(src->info("model.embed_tokens.weight").dtype, DType::BF16);
  check_blocks(*src, "model.embed_tokens.weight");
  check_blocks(*src, "model.layers.1.mlp.down_proj.weight");
  // bf16 -> bf16 is a byte copy; bf16 -> f32 is exact.
  Tensor raw = read_whole(*src, "model.layers.0.self_attn.q_proj.weight", DType::BF16);
  Tensor f32 = read_whole(*src, "model.layers.0.self_attn.q_proj.weight", DType::F32);
  std::vector<uint16_t> bits = halves(raw);
  for (size_t i = 0; i < bits.size(); ++i) ASSERT_EQ(bf16_to_f32(bits[i]), f32.data<float>()[i]);
}

TEST(Safetensors, F16BlocksMatchWhole) {
  SKIP_WITHOUT("models/tiny-llama2/model.safetensors.index.json");
  auto src = SafetensorsSource::open_dir(shared_path("models/tiny-llama2"));
  check_blocks(*src, "model.layers.0.self_attn.q_proj.weight");
  check_blocks(*src, "lm_head.weight");
  Tensor raw = read_whole(*src, "model.layers.0.mlp.gate_proj.weight", DType::F16);
  Tensor f32 = read_whole(*src, "model.layers.0.mlp.gate_proj.weight", DType::F32);
  std::vector<uint16_t> bits = halves(raw);
  for (size_t i = 0; i < bits.size(); ++i) ASSERT_EQ(f16_to_f32(bits[i]), f32.data<float>()[i]);
}

TEST(Safetensors, F32BlocksAnd1D) {
  SKIP_WITHOUT("models/tiny-gqa-f32/model.safetensors");
  auto src = SafetensorsSource::open_dir(shared_path("models/tiny-gqa-f32"));
  check_blocks(*src, "model.layers.3.self_attn.k_proj.weight");
  Tensor norm = read_whole(*src, "model.norm.weight", DType::F32);
  ASSERT_EQ(norm.shape(), (std::vector<int64_t>{128}));
  Tensor part = src->read_block("model.norm.weight", 0, 1, 32, 16, DType::F32);
  ASSERT_EQ(part.shape(), (std::vector<int64_t>{16}));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(part.data<float>()[i], norm.data<float>()[32 + i]);
}

TEST(Safetensors, BlockOutsideTensorRefused) {
  TempDir dir;
  write_file(dir.file("a.safetensors"), test::safetensors_bytes({test::f32_tensor("w", {4, 6})}));
  auto src = SafetensorsSource::open_file(dir.file("a.safetensors"));
  EXPECT_LLAMA_TP_ERROR(src->read_block("w", 2, 3, 0, 6, DType::F32), "w", dir.file("a.safetensors"), "[4, 6]");
  EXPECT_LLAMA_TP_ERROR(src->read_block("w", 0, 4, 5, 2, DType::F32), "w", "[4, 6]");
  EXPECT_LLAMA_TP_ERROR(src->read_block("w", -1, 1, 0, 6, DType::F32), "w");
  EXPECT_LLAMA_TP_ERROR(src->info("nope"), "nope", dir.file("a.safetensors"));
  EXPECT_LLAMA_TP_ERROR(src->read_block("w", 0, 1, 0, 1, DType::I8), "i8");
}

TEST(Safetensors, MetadataAndScalars) {
  TempDir dir;
  json h = {{"__metadata__", {{"format", "pt"}}},
            {"s", {{"dtype", "F32"}, {"shape", json::array()}, {"data_offsets", {0, 4}}}},
            {"e", {{"dtype", "F16"}, {"shape", {0, 3}}, {"data_offsets", {4, 4}}}}};
  float one = 1.5f;
  write_file(dir.file("m.safetensors"), test::safetensors_raw(h.dump(), std::string((char*)&one, 4)));
  SafetensorsFile f(dir.file("m.safetensors"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"e", "s"}));
  auto src = SafetensorsSource::open_file(dir.file("m.safetensors"));
  EXPECT_EQ(read_whole(*src, "s", DType::F32).data<float>()[0], 1.5f);
  EXPECT_EQ(read_whole(*src, "e", DType::F32).numel(), 0);
}

// --- malformed files ---------------------------------------------------------------------------

std::string one_tensor_header(const std::string& dtype, const json& shape, const json& offsets) {
  return json{{"w", {{"dtype", dtype}, {"shape", shape}, {"data_offsets", offsets}}}}.dump();
}

TEST(SafetensorsErrors, TruncatedFile) {
  TempDir dir;
  const std::string p = dir.file("model.safetensors");
  write_file(p, "");
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "too short");
  write_file(p, std::string(5, '\x10'));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "too short");
  // A real file cut inside its header.
  std::string full = test::safetensors_bytes({test::f32_tensor("w", {4, 4})});
  write_file(p, full.substr(0, 20));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "truncated");
  // ... and cut inside its data.
  write_file(p, full.substr(0, full.size() - 4));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w", "past the end");
}

TEST(SafetensorsErrors, AbsurdHeaderLength) {
  TempDir dir;
  const std::string p = dir.file("x.safetensors");
  write_file(p, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}");
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "header");
}

TEST(SafetensorsErrors, HeaderNotJson) {
  TempDir dir;
  const std::string p = dir.file("x.safetensors");
  write_file(p, test::safetensors_raw("{\"w\": {\"dtype\": \"F32\",", std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "not valid JSON");
  write_file(p, test::safetensors_raw("[1, 2, 3]", ""));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "JSON object");
  write_file(p, test::safetensors_raw(R"({"w": [1]})", ""));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w");
  write_file(p, test::safetensors_raw(R"({"w": {"dtype": "F32", "shape": [1]}})", ""));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w", "data_offsets");
}

TEST(SafetensorsErrors, OffsetsBeyondFile) {
  TempDir dir;
  const std::string p = dir.file("x.safetensors");
  write_file(p, test::safetensors_raw(one_tensor_header("F32", {4}, {0, 16}), std::string(8, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w", "[0, 16]", "past the end");
  write_file(p, test::safetensors_raw(one_tensor_header("F32", {4}, {1u << 30, (1u << 30) + 16}),
                                      std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w", "past the end");
  write_file(p, test::safetensors_raw(one_tensor_header("F32", {4}, {16, 0}), std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w");
  write_file(p, test::safetensors_raw(one_tensor_header("F32", {4}, {-4, 12}), std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w", "data_offsets");
}

TEST(SafetensorsErrors, SizeDisagreesWithShape) {
  TempDir dir;
  const std::string p = dir.file("x.safetensors");
  write_file(p, test::safetensors_raw(one_tensor_header("F32", {2, 3}, {0, 16}), std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w", "[2, 3]", "24 bytes");
}

TEST(SafetensorsErrors, OverlappingTensors) {
  TempDir dir;
  const std::string p = dir.file("x.safetensors");
  json h = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}},
            {"b", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {8, 24}}}}};
  write_file(p, test::safetensors_raw(h.dump(), std::string(24, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "overlap", "a", "b");
}

TEST(SafetensorsErrors, UnknownDtype) {
  TempDir dir;
  const std::string p = dir.file("x.safetensors");
  write_file(p, test::safetensors_raw(one_tensor_header("FOO", {4}, {0, 16}), std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w", "FOO");
  write_file(p, test::safetensors_raw(one_tensor_header("F64", {2}, {0, 16}), std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w", "F64");
  write_file(p, test::safetensors_raw(R"({"w": {"dtype": 3, "shape": [4], "data_offsets": [0, 16]}})",
                                      std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "tensor w", "dtype");
}

TEST(SafetensorsErrors, BadShape) {
  TempDir dir;
  const std::string p = dir.file("x.safetensors");
  write_file(p, test::safetensors_raw(one_tensor_header("F32", {-1, 4}, {0, 16}), std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "shape", "tensor w");
  write_file(p, test::safetensors_raw(one_tensor_header("F32", "4", {0, 16}), std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "shape", "tensor w");
  write_file(p, test::safetensors_raw(one_tensor_header("F32", {2.5}, {0, 16}), std::string(16, '\0')));
  EXPECT_LLAMA_TP_ERROR(SafetensorsFile{p}, p, "shape", "tensor w");
}

TEST(SafetensorsErrors, IndexProblems) {
  TempDir dir;
  write_file(dir.file("model-1.safetensors"), test::safetensors_bytes({test::f32_tensor("a", {2})}));
  const std::string index = dir.file("model.safetensors.index.json");
  write_file(index, R"({"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}})");
  EXPECT_LLAMA_TP_ERROR(SafetensorsSource::open_dir(dir.path()), index, "model-2.safetensors", "does not exist");
  write_file(index, R"({"weight_map": {"a": "model-1.safetensors", "c": "model-1.safetensors"}})");
  EXPECT_LLAMA_TP_ERROR(SafetensorsSource::open_dir(dir.path()), index, "tensor c", "model-1.safetensors");
  write_file(index, R"({"metadata": {}})");
  EXPECT_LLAMA_TP_ERROR(SafetensorsSource::open_dir(dir.path()), index, "weight_map");
  write_file(index, R"({"weight_map": )");
  EXPECT_LLAMA_TP_ERROR(SafetensorsSource::open_dir(dir.path()), index, "JSON");
  write_file(index, R"({"weight_map": {"a": "model-1.safetensors"}})");
  EXPECT_EQ(SafetensorsSource::open_dir(dir.path())->names(), std::vector<std::string>{"a"});
}

// --- checkpoint checks against config.json ------------------------------------------------------

TEST(CheckpointErrors, TinyModelOpens) {
  TempDir dir;
  test::write_tiny_model(dir, test::tiny_config(), test::tiny_tensors());
  Checkpoint ck = open_checkpoint(dir.path());
  EXPECT_EQ(ck.config.dim, 8);
  EXPECT_EQ(ck.config.head_dim, 4);
  EXPECT_EQ(ck.path, dir.path());
  // The same folder through its .safetensors file or its config.json.
  EXPECT_EQ(open_checkpoint(dir.file("model.safetensors")).config.n_layers, 2);
  EXPECT_EQ(open_checkpoint(dir.file("config.json")).config.n_layers, 2);
}

TEST(CheckpointErrors, ShapeDisagreesWithConfig) {
  TempDir dir;
  auto tensors = test::tiny_tensors();
  for (auto& t : tensors)
    if (t.name == "model.layers.1.self_attn.k_proj.weight") t = test::f32_tensor(t.name, {8, 8});
  test::write_tiny_model(dir, test::tiny_config(), tensors);
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(dir.path()), "model.layers.1.self_attn.k_proj.weight",
                        dir.file("model.safetensors"), dir.file("config.json"), "[8, 8]", "[4, 8]");
}

TEST(CheckpointErrors, MissingTensor) {
  TempDir dir;
  auto tensors = test::tiny_tensors();
  std::erase_if(tensors, [](const test::TensorSpec& t) { return t.name == "model.layers.0.mlp.up_proj.weight"; });
  test::write_tiny_model(dir, test::tiny_config(), tensors);
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(dir.path()), "model.layers.0.mlp.up_proj.weight",
                        dir.file("model.safetensors"), "missing", "[12, 8]");
}

TEST(CheckpointErrors, MissingLmHeadUnlessTied) {
  TempDir dir;
  auto tensors = test::tiny_tensors();
  tensors.pop_back();  // lm_head.weight
  test::write_tiny_model(dir, test::tiny_config(), tensors);
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(dir.path()), "lm_head.weight", "missing");
  json config = test::tiny_config();
  config["tie_word_embeddings"] = true;
  test::write_tiny_model(dir, config, tensors);
  EXPECT_TRUE(open_checkpoint(dir.path()).config.tie_embeddings);
}

TEST(CheckpointErrors, ConfigMissingRequiredField) {
  TempDir dir;
  json config = test::tiny_config();
  config.erase("hidden_size");
  test::write_tiny_model(dir, config, test::tiny_tensors());
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(dir.path()), dir.file("config.json"), "hidden_size");
}

TEST(CheckpointErrors, NonFloatWeightRefused) {
  TempDir dir;
  auto tensors = test::tiny_tensors();
  tensors[1] = test::TensorSpec{"model.layers.0.input_layernorm.weight", "I8", {8}, std::string(8, '\1')};
  json h = json::object();
  std::string data;
  for (auto& t : tensors) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  write_file(dir.file("config.json"), test::tiny_config().dump());
  write_file(dir.file("model.safetensors"), test::safetensors_raw(h.dump(), data));
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(dir.path()), "model.layers.0.input_layernorm.weight", "i8");
}

TEST(CheckpointErrors, PathProblems) {
  TempDir dir;
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(dir.file("nothing-here")), dir.file("nothing-here"), "does not exist");
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(dir.path()), dir.path(), "config.json");
  write_file(dir.file("config.json"), test::tiny_config().dump());
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(dir.path()), dir.path(), "safetensors");
  write_file(dir.file("m.gguf"), "GGUF");
  EXPECT_LLAMA_TP_ERROR(open_checkpoint(dir.file("m.gguf")), dir.file("m.gguf"), "GGUF");
}

}  // namespace
}  // namespace llama_tp
