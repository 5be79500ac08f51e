#include "launch/generate.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "launch/distributed_model.h"
#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/sampler.h"
#include "runtime/token_streamer.h"

namespace llama_tp {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LLAMA_TP_CHECK(f, "cannot read prompt file '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string prompt_text(const Options& o) { return o.prompt_file.empty() ? o.prompt : read_file(o.prompt_file); }

std::vector<int32_t> encode_prompt(const Engine& e, const Options& o, const std::string& text) {
  LLAMA_TP_CHECK(e.tokenizer, "the model at '", o.model, "' has no tokenizer (tokenizer.json, tokenizer.model or tokenizer.bin): pass --prompt-ids");
  const Tokenizer& tok = *e.tokenizer;
  if (o.chat) {
    std::vector<ChatMessage> messages;
    if (!o.system.empty()) messages.push_back({"system", o.system});
    messages.push_back({"user", text});
    // The chat text carries its own special tokens (and BOS where the format has it).
    return tok.encode(format_chat(tok, messages, true), false, true);
  }
  const bool add_bos = !o.no_bos && tok.bos_id() >= 0;
  return tok.encode(text, add_bos, o.special);
}

void check_ids(const std::vector<int32_t>& ids, int64_t vocab) {
  for (size_t i = 0; i < ids.size(); ++i)
    LLAMA_TP_CHECK(ids[i] >= 0 && ids[i] < vocab, "token id ", ids[i], " at prompt position ", i,
                   " is outside the vocabulary (0..", vocab - 1, ")");
}

void write_logits(const std::string& path, const std::vector<float>& logits) {
  std::ofstream f(path, std::ios::binary);
  LLAMA_TP_CHECK(f, "cannot write --logits-out file '", path, "'");
  f.write(reinterpret_cast<const char*>(logits.data()), std::streamsize(logits.size() * sizeof(float)));
  LLAMA_TP_CHECK(f.good(), "failed writing --logits-out file '", path, "'");
}

// Rank 0's side of one generation: the prompt is already checked.
struct Generation {
  std::vector<int32_t> output_ids;
  size_t outputs_in_cache = 0;  // leading output_ids whose K/V the cache holds
  std::string text;
  double prompt_seconds = 0, gen_seconds = 0;
  std::string stop_reason;
};

Generation generate(Engine& e, DistributedModel& dm, const Options& o, const std::vector<int32_t>& prompt, int pos0,
                    Sampler& sampler, bool stream_stdout) {
  const ModelConfig& c = e.checkpoint.config;
  const int64_t vocab = c.vocab_size;
  const int ctx = e.model->max_seq();
  Generation g;
  std::vector<int32_t> eos(c.eos_token_ids.begin(), c.eos_token_ids.end());
  if (e.tokenizer)
    for (int32_t id : e.tokenizer->eos_ids()) eos.push_back(id);
  // The reply starts the text only when the prompt is nothing but BOS; otherwise it continues
  // the prompt, and a SentencePiece-style leading space must be kept.
  const bool at_text_start = prompt.size() == 1 && prompt[0] == c.bos_token_id && pos0 == 0;
  std::unique_ptr<TokenStreamer> streamer =
      e.tokenizer ? std::make_unique<TokenStreamer>(*e.tokenizer, at_text_start) : nullptr;
  for (int32_t id : prompt) sampler.accept(id);

  const bool greedy = o.sampling.temperature <= 0 && o.sampling.repeat_penalty == 1.0f &&
                      o.sampling.frequency_penalty == 0 && o.sampling.presence_penalty == 0;
  auto t0 = Clock::now();
  const bool want_all = !o.logits_out.empty();
  std::vector<float> logits = dm.step(prompt, pos0, want_all ? LogitsWanted::All : LogitsWanted::Last);
  if (want_all) {
    write_logits(o.logits_out, logits);
    logits.erase(logits.begin(), logits.end() - vocab);
  }
  g.prompt_seconds = seconds_since(t0);
  t0 = Clock::now();

  int pos = pos0 + int(prompt.size());
  int32_t next = sampler.sample(logits.data(), int(vocab));
  const int limit = o.n_predict < 0 ? ctx : o.n_predict;
  std::string stop_tail;  // generated text, searched for stop strings
  for (int produced = 0;;) {
    if (produced >= limit) {
      g.stop_reason = "limit";
      break;
    }
    const bool is_eos = std::find(eos.begin(), eos.end(), next) != eos.end();
    if (is_eos && !o.ignore_eos) {
      g.stop_reason = "eos";
      break;
    }
    g.output_ids.push_back(next);
    sampler.accept(next);
    ++produced;
    if (streamer) {
      std::string piece = streamer->push(next);
      g.text += piece;
      if (stream_stdout) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
      bool stopped = false;
      for (const std::string& s : o.stop) {
        // Only the tail can hold a new match: the new piece plus what could start before it.
        const size_t window = piece.size() + s.size();
        const size_t from = g.text.size() > window ? g.text.size() - window : 0;
        stopped |= !s.empty() && g.text.find(s, from) != std::string::npos;
      }
      if (stopped) {
        g.stop_reason = "stop string";
        break;
      }
    }
    if (produced >= limit) continue;
    if (pos >= ctx) {
      g.stop_reason = "context full";
      break;
    }
    g.outputs_in_cache = g.output_ids.size();
    if (greedy) {
      next = dm.step_argmax({next}, pos);
    } else {
      logits = dm.step({next}, pos, LogitsWanted::Last);
      next = sampler.sample(logits.data(), int(vocab));
    }
    ++pos;
  }
  if (streamer) {
    std::string rest = streamer->flush();
    g.text += rest;
    if (stream_stdout) std::fwrite(rest.data(), 1, rest.size(), stdout);
  }
  g.gen_seconds = seconds_since(t0);
  return g;
}

void print_stats(const Engine& e, size_t n_prompt, const Generation& g) {
  char line[256];
  std::snprintf(line, sizeof line,
                "llama_tp: load %.2f s | prompt %zu tokens %.2f s (%.1f tok/s) | generated %zu tokens %.2f s (%.1f tok/s)",
                e.load_seconds, n_prompt, g.prompt_seconds, g.prompt_seconds > 0 ? n_prompt / g.prompt_seconds : 0.0,
                g.output_ids.size(), g.gen_seconds, g.gen_seconds > 0 ? g.output_ids.size() / g.gen_seconds : 0.0);
  std::cerr << "\n" << line << std::endl;
}

void interactive_chat(Engine& e, DistributedModel& dm, const Options& o, Sampler& sampler) {
  LLAMA_TP_CHECK(e.tokenizer, "--chat needs a tokenizer");
  std::vector<ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  std::vector<int32_t> in_cache;  // tokens whose K/V are in the cache, in order
  std::cerr << "llama_tp: chat mode, an empty line or Ctrl-D ends it" << std::endl;
  for (std::string line;;) {
    std::cout << "\n> " << std::flush;
    if (!std::getline(std::cin, line) || line.empty()) break;
    messages.push_back({"user", line});
    std::vector<int32_t> all = e.tokenizer->encode(format_chat(*e.tokenizer, messages, true), false, true);
    // Only the tokens past what the cache already holds are run.
    size_t common = 0;
    while (common < in_cache.size() && common < all.size() && in_cache[common] == all[common]) ++common;
    if (common == all.size()) --common;  // at least one token must run to get logits
    std::vector<int32_t> fresh(all.begin() + common, all.end());
    LLAMA_TP_CHECK(int(all.size()) < e.model->max_seq(), "the conversation (", all.size(), " tokens) fills the context (", e.model->max_seq(), "): raise --ctx-size");
    Generation g = generate(e, dm, o, fresh, int(common), sampler, true);
    in_cache = all;
    in_cache.insert(in_cache.end(), g.output_ids.begin(), g.output_ids.begin() + g.outputs_in_cache);
    messages.push_back({"assistant", g.text});
  }
}

// Rank 0's part; the other ranks serve its steps (DistributedModel::coordinate).
void generation_on_rank0(Engine& e, DistributedModel& dm, const Options& o) {
  const ModelConfig& c = e.checkpoint.config;
  Sampler sampler(o.sampling);

  const bool has_prompt = o.prompt_ids || !o.prompt.empty() || !o.prompt_file.empty();
  if (o.chat && !has_prompt && isatty(STDIN_FILENO)) return interactive_chat(e, dm, o, sampler);

  std::vector<int32_t> prompt;
  if (o.prompt_ids) prompt = *o.prompt_ids;
  else if (has_prompt) prompt = encode_prompt(e, o, prompt_text(o));
  else if (!o.no_bos && c.bos_token_id >= 0) prompt = {int32_t(c.bos_token_id)};  // generate from BOS
  LLAMA_TP_CHECK(!prompt.empty(), "the prompt is empty: give -p, -f or --prompt-ids");
  check_ids(prompt, c.vocab_size);
  LLAMA_TP_CHECK(int(prompt.size()) <= e.model->max_seq(), "the prompt has ", prompt.size(),
                 " tokens but the context size is ", e.model->max_seq(), " (raise --ctx-size, up to the model's ",
                 c.max_seq_len, ", or shorten the prompt)");

  Generation g = generate(e, dm, o, prompt, 0, sampler, !o.json);
  if (o.json) {
    nlohmann::json j;
    j["prompt_ids"] = prompt;
    j["output_ids"] = g.output_ids;
    if (e.tokenizer) j["text"] = g.text;
    j["stop_reason"] = g.stop_reason;
    j["timings"] = {{"load_s", e.load_seconds},
                    {"prompt_s", g.prompt_seconds},
                    {"prompt_tokens_per_s", g.prompt_seconds > 0 ? prompt.size() / g.prompt_seconds : 0.0},
                    {"generation_s", g.gen_seconds},
                    {"generation_tokens_per_s", g.gen_seconds > 0 ? g.output_ids.size() / g.gen_seconds : 0.0}};
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << std::endl;
  }
  print_stats(e, prompt.size(), g);
}

}  // namespace

void run_generation(Engine& e, const Options& o) {
  DistributedModel dm(*e.model, *e.comm);
  dm.coordinate([&] { generation_on_rank0(e, dm, o); });
}

void run_tokenize(const Options& o) {
  Options copy = o;
  const std::string path = find_tokenizer(o.model);
  LLAMA_TP_CHECK(!path.empty(), "no tokenizer found for '", o.model, "' (tokenizer.json, tokenizer.model or tokenizer.bin)");
  auto tok = Tokenizer::load(path);
  const std::string text = prompt_text(o);
  std::vector<int32_t> ids = tok->encode(text, !o.no_bos && tok->add_bos_default() && tok->bos_id() >= 0, o.special);
  if (o.json) {
    std::cout << nlohmann::json{{"ids", ids}}.dump() << std::endl;
    return;
  }
  for (int32_t id : ids) {
    std::string piece = tok->decode({id});
    std::cout << id << " -> '" << piece << "'\n";
  }
  std::cout << "total: " << ids.size() << " tokens" << std::endl;
}

void run_detokenize(const Options& o) {
  const std::string path = find_tokenizer(o.model);
  LLAMA_TP_CHECK(!path.empty(), "no tokenizer found for '", o.model, "'");
  auto tok = Tokenizer::load(path);
  std::string text = tok->decode(o.ids);
  if (o.json) std::cout << nlohmann::json{{"text", text}}.dump() << std::endl;
  else std::cout << text << std::endl;
}

}  // namespace llama_tp
