#include <filesystem>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/gguf.h"
#include "runtime/llama2c.h"
#include "runtime/safetensors.h"
#include "runtime/weight_block.h"
#include "runtime/weight_source.h"

namespace llama_tp {

namespace fs = std::filesystem;

Tensor read_whole(const WeightSource& src, const std::string& name, DType out, Backend* backend) {
  const TensorInfo info = src.info(name);
  const int64_t rows = block_rows(info.shape), cols = block_cols(info.shape);
  Tensor t = backend ? src.read_block_for(*backend, name, 0, rows, 0, cols, out)
                     : src.read_block(name, 0, rows, 0, cols, out);
  return info.shape.size() > 2 ? t.reshaped(info.shape) : t;
}

void validate_llama_weights(const ModelConfig& c, const WeightSource& weights,
                            const std::string& config_name) {
  auto expect = [&](const std::string& name, const std::vector<int64_t>& shape) {
    LLAMA_TP_CHECK(weights.has(name), "tensor ", name, " is missing from ", weights.describe(name),
                   "; ", config_name, " describes a model (", c.n_layers, " layers",
                   c.tie_embeddings ? "" : ", untied lm_head", ") that needs it, with shape ",
                   shape_to_string(shape), ".");
    const TensorInfo info = weights.info(name);
    LLAMA_TP_CHECK(info.shape == shape, "tensor ", name, " in ", weights.describe(name), " has shape ",
                   shape_to_string(info.shape), " but ", config_name, " implies ", shape_to_string(shape),
                   "; the weights and the config do not belong to the same model.");
    LLAMA_TP_CHECK(info.dtype == DType::F32 || info.dtype == DType::F16 || info.dtype == DType::BF16,
                   "tensor ", name, " in ", weights.describe(name), " has dtype ", dtype_name(info.dtype),
                   "; llama_tp reads f32, f16 and bf16 weights.");
  };
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  expect("model.embed_tokens.weight", {c.vocab_size, c.dim});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    expect(p + "input_layernorm.weight", {c.dim});
    expect(p + "self_attn.q_proj.weight", {q, c.dim});
    expect(p + "self_attn.k_proj.weight", {kv, c.dim});
    expect(p + "self_attn.v_proj.weight", {kv, c.dim});
    expect(p + "self_attn.o_proj.weight", {c.dim, q});
    expect(p + "post_attention_layernorm.weight", {c.dim});
    expect(p + "mlp.gate_proj.weight", {c.ffn_dim, c.dim});
    expect(p + "mlp.up_proj.weight", {c.ffn_dim, c.dim});
    expect(p + "mlp.down_proj.weight", {c.dim, c.ffn_dim});
  }
  expect("model.norm.weight", {c.dim});
  if (!c.tie_embeddings) expect("lm_head.weight", {c.vocab_size, c.dim});
}

namespace {

Checkpoint open_hf(const std::string& dir, const std::string& single_file) {
  Checkpoint ck;
  ck.path = dir;
  ck.config = ModelConfig::from_hf_dir(dir);
  if (!single_file.empty()) {
    ck.weights = SafetensorsSource::open_file(single_file);
  } else {
    const fs::path d(dir);
    bool has_safetensors = fs::exists(d / "model.safetensors") || fs::exists(d / "model.safetensors.index.json");
    if (!has_safetensors && (fs::exists(d / "pytorch_model.bin") || fs::exists(d / "pytorch_model.bin.index.json")))
      LLAMA_TP_FAIL(dir, " holds PyTorch pickle weights (pytorch_model.bin), which llama_tp does not "
                    "read; convert them to safetensors first.");
    ck.weights = SafetensorsSource::open_dir(dir);
  }
  validate_llama_weights(ck.config, *ck.weights, (fs::path(dir) / "config.json").string());
  return ck;
}

}  // namespace

Checkpoint open_checkpoint(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  LLAMA_TP_CHECK(fs::exists(p, ec), "model path ", path, " does not exist.");
  if (fs::is_directory(p, ec)) {
    LLAMA_TP_CHECK(fs::exists(p / "config.json"), "no config.json in ", path,
                   ": pass a Hugging Face model folder (config.json + *.safetensors) or a llama2.c "
                   ".bin checkpoint file itself.");
    return open_hf(path, "");
  }

  const std::string ext = p.extension().string();
  if (ext == ".bin") {
    auto source = std::make_unique<Llama2cSource>(path);
    Checkpoint ck;
    ck.path = path;
    ck.config = source->config();
    ck.weights = std::move(source);
    validate_llama_weights(ck.config, *ck.weights, "the header of " + path);
    return ck;
  }
  const std::string parent = p.has_parent_path() ? p.parent_path().string() : ".";
  if (ext == ".safetensors") return open_hf(parent, path);
  if (p.filename() == "config.json") return open_hf(parent, "");
  if (ext == ".gguf") {
    auto source = std::make_unique<GgufSource>(path);
    Checkpoint ck;
    ck.path = path;
    ck.config = source->config();
    ck.weights = std::move(source);
    validate_llama_weights(ck.config, *ck.weights, "the metadata of " + path);
    return ck;
  }
  LLAMA_TP_FAIL("do not know how to load ", path, ": pass a Hugging Face model folder (config.json + "
                "*.safetensors), a llama2.c .bin checkpoint or a GGUF (.gguf) file.");
}

}  // namespace llama_tp
