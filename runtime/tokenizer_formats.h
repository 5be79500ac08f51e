#pragma once
// Readers of the tokenizer file formats (internal to runtime/). Each returns a tokenizer whose
// specials are what the file itself implies; Tokenizer::load then applies
// tokenizer_config.json over them.
#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer.h"

namespace llama_tp {

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& file);           // tokenizer.json
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& file);       // tokenizer.bin
// A llama2.c-style tokenizer from pieces (spaces as " ") and scores held in memory.
std::unique_ptr<Tokenizer> make_llama2c_tokenizer(std::vector<std::string> pieces, std::vector<float> scores,
                                                  const std::string& source);
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& file);        // model.gguf
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& file); // tokenizer.model

}  // namespace llama_tp
