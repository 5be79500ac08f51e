#include "launch/options.h"

#include <boost/program_options.hpp>
#include <cstring>
#include <sstream>

#include "launch/memory_plan.h"
#include "runtime/error.h"

namespace po = boost::program_options;

namespace llama_tp {

std::vector<int32_t> parse_id_list(const std::string& text, const std::string& option_name) {
  std::vector<int32_t> ids;
  std::string cleaned;
  for (char c : text) cleaned += (c == ',' || c == '[' || c == ']' || c == '\n' || c == '\t') ? ' ' : c;
  std::istringstream in(cleaned);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    LLAMA_TP_CHECK(used == word.size() && v >= INT32_MIN && v <= INT32_MAX, option_name,
                   ": '", word, "' is not a token id (expected integers separated by commas)");
    ids.push_back(int32_t(v));
  }
  LLAMA_TP_CHECK(!ids.empty(), option_name, ": no token ids given");
  return ids;
}

namespace {

std::vector<int> parse_int_list(const std::string& text, const std::string& option_name) {
  std::vector<int> out;
  for (int32_t v : parse_id_list(text, option_name)) out.push_back(v);
  return out;
}

}  // namespace

Options parse_options(int argc, char** argv) {
  Options o;
  int first = 1;
  if (argc > 1) {
    const std::string sub = argv[1];
    if (sub == "run") o.command = Command::Run, first = 2;
    else if (sub == "tokenize") o.command = Command::Tokenize, first = 2;
    else if (sub == "detokenize") o.command = Command::Detokenize, first = 2;
    else if (sub == "bench") o.command = Command::Bench, first = 2;
  }
  const bool bench = o.command == Command::Bench;

  std::string prompt_ids, ids, bench_p = "512", bench_n = "128", bench_d = "0", gpu_limit, mem_limit;
  bool detokenize_flag = false, no_cuda_graphs = false;
  po::options_description model("Model and placement");
  model.add_options()
      ("help,h", po::bool_switch(&o.help), "print this help")
      ("model,m", po::value(&o.model), "model folder (config.json + *.safetensors), llama2.c .bin file, "
                                      "or a named shape with random weights: llama3-8b, llama3-70b, llama3.2-1b, "
                                      "llama3.2-3b, llama2-7b, llama2-13b, llama2-70b, tinyllama-1.1b")
      ("load-format", po::value(&o.load_format)->default_value("auto"), "auto | dummy (random weights of the model's config.json)")
      ("backend", po::value(&o.backend)->default_value("auto"), "auto | cpu | cuda")
      ("dtype", po::value(&o.dtype)->default_value("auto"), "CUDA compute dtype: auto (checkpoint's) | f32 | f16 | bf16")
      ("kv-dtype", po::value(&o.kv_dtype)->default_value("auto"), "CUDA KV cache dtype: auto (compute dtype) | f32 | f16 | bf16")
      ("precise-activations", po::bool_switch(&o.precise_activations),
       "CUDA prompt products see float32 activations (two 16-bit halves, twice the FLOPs) instead of rounded ones")
      ("rope-freqs", po::value(&o.rope_freqs)->default_value("checkpoint"),
       "RoPE inverse frequencies: checkpoint (rounded to a bf16/f16 checkpoint's dtype, as HF models cast with "
       ".to(dtype) and the reference logits have them) | f32 (as HF from_pretrained and llama.cpp keep them)")
      ("comm", po::value(&o.comm)->default_value("auto"), "communicator: auto | nccl | mpi | single")
      ("gpu", po::value(&o.gpu)->default_value(-1), "GPU index for this rank (default: local rank)")
      ("ctx-size,c", po::value(&o.ctx_size)->default_value(0), "context size in tokens (0: min(model max, 4096))")
      ("batch-size,b", po::value(&o.batch_size)->default_value(2048), "prompt tokens per forward pass")
      ("no-cuda-graphs", po::bool_switch(&no_cuda_graphs), "run decode steps kernel by kernel instead of replaying "
                                                          "them as CUDA graphs (also: LLAMA_TP_NO_GRAPHS=1)")
      ("quant", po::value(&o.quant)->default_value("auto"), "linear-layer weights: none | int8 (weight-only, quantized at load "
                                                            "time) | auto (int8 for llama2.c version 2 files, else none)")
      ("quant-group", po::value(&o.quant_group)->default_value(-1), "--quant int8: input columns per scale (0: one per row; "
                                                                    "-1: 128, or a llama2.c version 2 file's own group size)")
      ("gpu-memory-limit", po::value(&gpu_limit), "most GPU memory one rank may use, e.g. 24GiB (emulates a smaller card)")
      ("memory-limit", po::value(&mem_limit), "most memory one rank may use on its device (host RAM with --backend cpu), e.g. 8GiB")
      ("verbose", po::bool_switch(&o.verbose), "every rank prints who it is, its GPU, memory plan and shard");
  po::options_description prompt("Prompt");
  prompt.add_options()
      ("prompt,p", po::value(&o.prompt), bench ? "bench: prompt lengths, e.g. 512 or 128,2048" : "prompt text")
      ("file,f", po::value(&o.prompt_file), "read the prompt from a file")
      ("prompt-ids", po::value(&prompt_ids), "prompt as token ids, e.g. 1,2,3 (bypasses the tokenizer)")
      ("no-bos", po::bool_switch(&o.no_bos), "do not add the BOS token")
      ("special", po::bool_switch(&o.special), "recognise special-token text (e.g. <|eot_id|>) in the prompt")
      ("chat,cnv", po::bool_switch(&o.chat), "wrap the prompt in the model's chat format; interactive on a terminal")
      ("system", po::value(&o.system), "system message for --chat")
      ("ids", po::value(&ids), "detokenize: token ids, e.g. 1,2,3")
      ("detokenize", po::bool_switch(&detokenize_flag), "tokenize: turn --ids (or -p ids) back into text");
  po::options_description gen("Generation");
  gen.add_options()
      ("n-predict,n", po::value(&o.n_predict)->default_value(128), bench ? "bench: generated tokens, e.g. 128" : "tokens to generate (-1: until EOS or context end)")
      ("temp", po::value(&o.sampling.temperature)->default_value(0.8f), "temperature (0: greedy)")
      ("top-k", po::value(&o.sampling.top_k)->default_value(40), "top-k (0: off)")
      ("top-p", po::value(&o.sampling.top_p)->default_value(0.95f), "top-p (1: off)")
      ("min-p", po::value(&o.sampling.min_p)->default_value(0.05f), "min-p (0: off)")
      ("repeat-penalty", po::value(&o.sampling.repeat_penalty)->default_value(1.0f), "repetition penalty (1: off)")
      ("repeat-last-n", po::value(&o.sampling.repeat_last_n)->default_value(64), "tokens the penalties look back (-1: all)")
      ("frequency-penalty", po::value(&o.sampling.frequency_penalty)->default_value(0.0f), "frequency penalty")
      ("presence-penalty", po::value(&o.sampling.presence_penalty)->default_value(0.0f), "presence penalty")
      ("seed,s", po::value(&o.sampling.seed)->default_value(0xC0FFEE), "sampling seed")
      ("ignore-eos", po::bool_switch(&o.ignore_eos), "keep generating past EOS")
      ("stop", po::value(&o.stop)->composing(), "stop string (repeatable)");
  po::options_description out("Output");
  out.add_options()
      ("json", po::bool_switch(&o.json), "print one JSON object (ids, text, timings) on stdout")
      ("logits-out", po::value(&o.logits_out), "write float32 logits [prompt positions, vocab] to a file");
  po::options_description bench_opts("Bench (llama_tp bench)");
  bench_opts.add_options()
      ("depth,d", po::value(&bench_d), "bench: context depth(s) before decoding, e.g. 0,8192")
      ("repetitions,r", po::value(&o.bench_reps)->default_value(5), "bench: repetitions")
      ("bandwidth", po::value(&o.bandwidth_gbs)->default_value(0), "bench: memory bandwidth in GB/s (0: measure)")
      ("output,o", po::value(&o.bench_output)->default_value("table"), "bench: table | json");
  po::options_description all;
  all.add(model).add(prompt).add(gen).add(out).add(bench_opts);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc - first + 1, argv + first - 1).options(all).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    LLAMA_TP_FAIL(e.what(), " (see llama_tp --help)");
  }
  std::ostringstream help;
  help << "llama_tp: tensor-parallel Llama inference\n\n"
          "usage: llama_tp [run] -m MODEL -p PROMPT [options]\n"
          "       llama_tp tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--json]\n"
          "       llama_tp detokenize -m MODEL --ids 1,2,3\n"
          "       llama_tp bench -m MODEL [-p 512] [-n 128] [-d 0] [-r 5] [-o table|json]\n"
          "       mpirun -np N llama_tp ...   (tensor parallel across N ranks, one GPU each)\n\n"
       << all;
  o.help_text = help.str();
  if (o.help) return o;

  o.cuda_graphs = !no_cuda_graphs;
  if (detokenize_flag) o.command = Command::Detokenize;
  if (!prompt_ids.empty()) o.prompt_ids = parse_id_list(prompt_ids, "--prompt-ids");
  if (o.command == Command::Detokenize) o.ids = parse_id_list(!ids.empty() ? ids : o.prompt, "--ids");
  if (bench) {
    if (vm.count("prompt")) bench_p = o.prompt;
    bench_n = vm["n-predict"].defaulted() ? "128" : std::to_string(o.n_predict);
    o.bench_prompt = parse_int_list(bench_p, "-p");
    o.bench_gen = parse_int_list(bench_n, "-n");
    o.bench_depth = parse_int_list(bench_d, "-d");
    for (int v : o.bench_prompt) LLAMA_TP_CHECK(v >= 0, "-p: prompt length must be >= 0, got ", v);
    for (int v : o.bench_gen) LLAMA_TP_CHECK(v >= 0, "-n: generated tokens must be >= 0, got ", v);
    for (int v : o.bench_depth) LLAMA_TP_CHECK(v >= 0, "-d: depth must be >= 0, got ", v);
    LLAMA_TP_CHECK(o.bench_reps >= 1, "-r: repetitions must be >= 1");
    LLAMA_TP_CHECK(o.bench_output == "table" || o.bench_output == "json", "-o must be table or json, got '", o.bench_output, "'");
  }

  LLAMA_TP_CHECK(!o.model.empty(), "no model given: pass -m/--model (a model folder, a .bin file or a shape such as llama3-8b)");
  LLAMA_TP_CHECK(o.backend == "auto" || o.backend == "cpu" || o.backend == "cuda", "--backend must be auto, cpu or cuda, got '", o.backend, "'");
  LLAMA_TP_CHECK(o.comm == "auto" || o.comm == "nccl" || o.comm == "mpi" || o.comm == "single", "--comm must be auto, nccl, mpi or single, got '", o.comm, "'");
  LLAMA_TP_CHECK(o.load_format == "auto" || o.load_format == "dummy", "--load-format must be auto or dummy, got '", o.load_format, "'");
  LLAMA_TP_CHECK(o.dtype == "auto" || o.dtype == "f32" || o.dtype == "f16" || o.dtype == "bf16", "--dtype must be auto, f32, f16 or bf16, got '", o.dtype, "'");
  LLAMA_TP_CHECK(o.kv_dtype == "auto" || o.kv_dtype == "f32" || o.kv_dtype == "f16" || o.kv_dtype == "bf16", "--kv-dtype must be auto, f32, f16 or bf16, got '", o.kv_dtype, "'");
  LLAMA_TP_CHECK(o.quant == "auto" || o.quant == "none" || o.quant == "int8", "--quant must be auto, none or int8, got '", o.quant, "'");
  LLAMA_TP_CHECK(o.quant_group >= -1, "--quant-group must be >= 0 (0: one scale per row) or -1 (auto), got ", o.quant_group);
  if (!gpu_limit.empty()) o.gpu_memory_limit = parse_byte_size(gpu_limit, "--gpu-memory-limit");
  if (!mem_limit.empty()) o.memory_limit = parse_byte_size(mem_limit, "--memory-limit");
  LLAMA_TP_CHECK(o.rope_freqs == "checkpoint" || o.rope_freqs == "f32", "--rope-freqs must be checkpoint or f32, got '", o.rope_freqs, "'");
  LLAMA_TP_CHECK(o.ctx_size >= 0, "--ctx-size must be >= 0, got ", o.ctx_size);
  LLAMA_TP_CHECK(o.batch_size >= 1, "--batch-size must be >= 1, got ", o.batch_size);
  o.batch_size_set = !vm["batch-size"].defaulted();
  LLAMA_TP_CHECK(o.n_predict >= -1, "--n-predict must be >= -1, got ", o.n_predict);
  if (o.command == Command::Run || o.command == Command::Tokenize) {
    int sources = !o.prompt.empty() + !o.prompt_file.empty() + o.prompt_ids.has_value();
    LLAMA_TP_CHECK(sources <= 1, "give the prompt once: -p, -f or --prompt-ids");
    LLAMA_TP_CHECK(o.command != Command::Tokenize || (sources == 1 && !o.prompt_ids), "tokenize needs -p TEXT or -f FILE");
  }
  return o;
}

}  // namespace llama_tp
