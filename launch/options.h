#pragma once
// Command-line options of the llama_tp executable (llama.cpp's names where they exist).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/sampler.h"

namespace llama_tp {

enum class Command { Run, Tokenize, Detokenize, Bench };

struct Options {
  Command command = Command::Run;
  bool help = false;
  std::string help_text;

  // model and placement
  std::string model;              // folder, llama2.c .bin, or a named shape (llama3-8b, ...)
  std::string load_format = "auto";  // auto | dummy (random weights of the config's shape)
  std::string backend = "auto";   // auto | cpu | cuda
  std::string dtype = "auto";     // compute dtype on CUDA: auto (checkpoint's) | f32 | f16 | bf16
  std::string kv_dtype = "auto";  // KV cache dtype on CUDA: auto (compute dtype) | f32 | f16 | bf16
  bool precise_activations = false;
  std::string rope_freqs = "checkpoint";  // checkpoint (rounded to a 16-bit checkpoint's dtype) | f32  // CUDA prefill products on float32-accurate activations
  std::string comm = "auto";      // auto | nccl | mpi | single
  int gpu = -1;                   // GPU index override (default: the local rank)
  int ctx_size = 0;               // 0: min(model's max positions, 4096)
  int batch_size = 2048;          // prompt tokens per forward pass
  bool batch_size_set = false;    // given on the command line (else the default may shrink to fit)
  bool cuda_graphs = true;        // replay decode steps as CUDA graphs (--no-cuda-graphs; env LLAMA_TP_NO_GRAPHS=1)
  std::string quant = "auto";     // auto (none; int8 for llama2.c version 2 files) | none | int8
  int quant_group = -1;           // int8: input columns per scale (0: per row; -1: 128, or a v2 file's own)
  size_t gpu_memory_limit = 0;    // bytes one rank may use on its GPU (0: its free memory)
  size_t memory_limit = 0;        // bytes one rank may use on its device, host RAM for --backend cpu (0: no limit)
  bool verbose = false;

  // prompt
  std::string prompt;
  std::string prompt_file;
  std::optional<std::vector<int32_t>> prompt_ids;
  bool no_bos = false;
  bool special = false;           // recognise special-token text in the prompt
  bool chat = false;
  std::string system;

  // generation
  int n_predict = 128;            // -1: until EOS or the context is full
  SamplerParams sampling;
  bool ignore_eos = false;
  std::vector<std::string> stop;

  // output
  bool json = false;
  std::string logits_out;

  // bench
  std::vector<int> bench_prompt;  // -p 512
  std::vector<int> bench_gen;     // -n 128
  std::vector<int> bench_depth;   // -d 0
  int bench_reps = 5;
  double bandwidth_gbs = 0;       // 0: measure
  std::string bench_output = "table";  // table | json

  // tokenize / detokenize
  std::vector<int32_t> ids;       // detokenize input
};

// Parses argv (argv[1] may be a subcommand: run, tokenize, detokenize, bench). Throws
// llama_tp::Error with a one-line message on bad options.
Options parse_options(int argc, char** argv);

// Parses "1,2,3" (spaces allowed, also "[1, 2, 3]") into ids; throws on anything else.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& option_name);

}  // namespace llama_tp
