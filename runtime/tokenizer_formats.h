#pragma once
// Readers of the tokenizer file formats (internal to runtime/). Each returns a tokenizer whose
// specials are what the file itself implies; Tokenizer::load then applies
// tokenizer_config.json over them.
#include <memory>
#include <string>

#include "runtime/tokenizer.h"

namespace llama_tp {

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& file);           // tokenizer.json
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& file);       // tokenizer.bin
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& file); // tokenizer.model

}  // namespace llama_tp
