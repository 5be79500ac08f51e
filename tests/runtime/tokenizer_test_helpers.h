#pragma once
// Shared by the tokenizer test files: tokenizers loaded once per process (tokenizer.json files
// take a while to parse), temporary folders, the streamer's output for a whole id list.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/token_streamer.h"
#include "runtime/tokenizer.h"
#include "test_util.h"

namespace llama_tp::test {

// Tokenizer::load(shared_path(rel)), cached; nullptr when ../shared lacks it.
inline const Tokenizer* shared_tokenizer(const std::string& rel) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(rel);
  if (it == cache.end()) {
    std::string path = shared_path(rel);
    it = cache.emplace(rel, path.empty() ? nullptr : Tokenizer::load(path)).first;
  }
  return it->second.get();
}

#define LOAD_SHARED_TOKENIZER_OR_SKIP(var, rel)                                         \
  const ::llama_tp::Tokenizer* var = ::llama_tp::test::shared_tokenizer(rel);           \
  if (!var) GTEST_SKIP() << "needs ../shared/" << (rel) << " (not found; set LLAMA_TP_SHARED)"

inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// Pushes every id through a TokenStreamer and concatenates what comes out.
inline std::string streamed_text(const Tokenizer& tok, const std::vector<int32_t>& ids,
                                 bool at_text_start = true) {
  TokenStreamer streamer(tok, at_text_start);
  std::string text;
  for (int32_t id : ids) text += streamer.push(id);
  return text + streamer.flush();
}

// A fresh folder under the system temp dir, removed with its contents at scope exit.
class TokenizerTempDir {
 public:
  TokenizerTempDir() {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      path_ = base / ("llama_tp_test_" + std::to_string(::getpid()) + "_" + std::to_string(i));
      if (std::filesystem::create_directory(path_)) break;
    }
  }
  ~TokenizerTempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace llama_tp::test
