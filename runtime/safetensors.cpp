#include "runtime/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace llama_tp {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// No real header comes near this; a larger length means the file is not safetensors.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

bool parse_safetensors_dtype(const std::string& s, DType& out) {
  if (s == "F32") out = DType::F32;
  else if (s == "F16") out = DType::F16;
  else if (s == "BF16") out = DType::BF16;
  else if (s == "I8") out = DType::I8;
  else if (s == "I32") out = DType::I32;
  else return false;
  return true;
}

bool is_other_safetensors_dtype(const std::string& s) {
  static const std::set<std::string> known = {"F64", "I64", "I16", "U8", "U16", "U32", "U64",
                                              "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",
                                              "F6_E2M3", "F6_E3M2", "C64"};
  return known.count(s) != 0;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LLAMA_TP_CHECK(in, "cannot open ", path, " for reading.");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// A non-negative JSON integer, or throws with `what` describing where it sits.
uint64_t non_negative(const json& v, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return uint64_t(v.get<int64_t>());
  LLAMA_TP_FAIL(what, " must be a non-negative integer, but it is ", v.dump(), ".");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const size_t size = file_.size();
  LLAMA_TP_CHECK(size >= 8, path, " is only ", size,
                 " bytes long, too short for a safetensors file (which starts with an 8-byte header "
                 "length); the file is truncated or not safetensors.");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | file_.data()[i];  // little-endian
  LLAMA_TP_CHECK(header_len <= kMaxHeaderBytes, path, " declares a ", header_len,
                 "-byte header, far more than any safetensors header; the file is corrupt or not "
                 "safetensors.");
  LLAMA_TP_CHECK(header_len <= size - 8, path, " declares a ", header_len,
                 "-byte header but the file has only ", size - 8,
                 " bytes after the length field; the file is truncated.");
  data_start_ = 8 + header_len;
  const uint64_t data_size = size - data_start_;

  json header;
  try {
    header = json::parse(reinterpret_cast<const char*>(file_.data()) + 8,
                         reinterpret_cast<const char*>(file_.data()) + data_start_);
  } catch (const json::exception& e) {
    LLAMA_TP_FAIL("the header of ", path, " is not valid JSON (", e.what(),
                  "); the file is corrupt or not safetensors.");
  }
  LLAMA_TP_CHECK(header.is_object(), "the header of ", path, " must be a JSON object, but it is ",
                 header.type_name(), "; the file is corrupt or not safetensors.");

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      LLAMA_TP_CHECK(value.is_object() || value.is_null(), "__metadata__ in the header of ", path,
                     " must be an object of strings.");
      if (value.is_object())
        for (const auto& [k, v] : value.items()) metadata_[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    const std::string where = "tensor " + name + " in " + path;
    LLAMA_TP_CHECK(value.is_object(), "the header entry for ", where,
                   " must be an object with dtype, shape and data_offsets.");
    for (const char* key : {"dtype", "shape", "data_offsets"})
      LLAMA_TP_CHECK(value.contains(key), "the header entry for ", where, " has no '", key, "'.");

    SafetensorsEntry e;
    const json& dt = value.at("dtype");
    LLAMA_TP_CHECK(dt.is_string(), "the dtype of ", where, " must be a string, but it is ", dt.dump(), ".");
    const std::string dts = dt.get<std::string>();
    if (!parse_safetensors_dtype(dts, e.dtype)) {
      if (is_other_safetensors_dtype(dts))
        LLAMA_TP_FAIL(where, " has dtype ", dts,
                      ", which llama_tp does not read (it reads F32, F16, BF16, I8 and I32); convert "
                      "the checkpoint to float32, float16 or bfloat16.");
      LLAMA_TP_FAIL(where, " has unknown dtype '", dts,
                    "' (safetensors dtypes llama_tp reads: F32, F16, BF16, I8, I32); the file is "
                    "corrupt or was written by an incompatible tool.");
    }

    const json& shape = value.at("shape");
    LLAMA_TP_CHECK(shape.is_array(), "the shape of ", where, " must be a list of integers, but it is ",
                   shape.dump(), ".");
    for (const json& d : shape) {
      uint64_t v = non_negative(d, "each dimension in the shape of " + where);
      LLAMA_TP_CHECK(v <= uint64_t(INT64_MAX), "the shape of ", where, " has an absurd dimension ", v, ".");
      e.shape.push_back(int64_t(v));
    }
    const uint64_t numel = uint64_t(checked_numel(e.shape, where));

    const json& off = value.at("data_offsets");
    LLAMA_TP_CHECK(off.is_array() && off.size() == 2, "data_offsets of ", where,
                   " must be a list [begin, end], but it is ", off.dump(), ".");
    e.begin = non_negative(off[0], "data_offsets[0] of " + where);
    e.end = non_negative(off[1], "data_offsets[1] of " + where);
    LLAMA_TP_CHECK(e.begin <= e.end, "data_offsets [", e.begin, ", ", e.end, "] of ", where,
                   " end before they begin; the file is corrupt.");
    LLAMA_TP_CHECK(e.end <= data_size, "data_offsets [", e.begin, ", ", e.end, "] of ", where,
                   " reach past the end of the file (its data region has ", data_size,
                   " bytes); the file is truncated or corrupt.");
    const uint64_t want = numel * dtype_size(e.dtype);
    LLAMA_TP_CHECK(numel <= UINT64_MAX / 8 && e.end - e.begin == want, where, " has shape ",
                   shape_to_string(e.shape), " of ", dts, " (", want, " bytes) but data_offsets [",
                   e.begin, ", ", e.end, "] span ", e.end - e.begin, " bytes; the file is corrupt.");
    entries_.emplace(name, std::move(e));
  }

  // No two tensors may share bytes: sort by start and compare neighbours.
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> order;
  for (const auto& [name, e] : entries_)
    if (e.end > e.begin) order.emplace_back(&name, &e);
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& [pname, prev] = order[i - 1];
    const auto& [name, cur] = order[i];
    LLAMA_TP_CHECK(cur->begin >= prev->end, "tensors ", *pname, " (bytes [", prev->begin, ", ",
                   prev->end, ")) and ", *name, " (bytes [", cur->begin, ", ", cur->end,
                   ")) overlap in ", path, "; the file is corrupt.");
  }
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  LLAMA_TP_CHECK(it != entries_.end(), "tensor ", name, " is not in ", path(), ".");
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

StoredTensor SafetensorsFile::stored(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  StoredTensor t;
  t.data = file_.data() + data_start_ + e.begin;
  t.dtype = e.dtype;
  t.shape = e.shape;
  return t;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsSource

std::unique_ptr<SafetensorsSource> SafetensorsSource::open_file(const std::string& path) {
  std::unique_ptr<SafetensorsSource> src(new SafetensorsSource());
  src->origin_ = path;
  src->files_.push_back(std::make_unique<SafetensorsFile>(path));
  const SafetensorsFile* f = src->files_.back().get();
  for (const std::string& name : f->names()) src->where_[name] = f;
  return src;
}

std::unique_ptr<SafetensorsSource> SafetensorsSource::open_index(const std::string& index_path) {
  json index;
  try {
    index = json::parse(read_text_file(index_path));
  } catch (const json::exception& e) {
    LLAMA_TP_FAIL(index_path, " is not valid JSON (", e.what(), "); re-download or fix it.");
  }
  LLAMA_TP_CHECK(index.is_object() && index.contains("weight_map") && index.at("weight_map").is_object(),
                 index_path, " has no 'weight_map' object mapping tensor names to files.");

  std::unique_ptr<SafetensorsSource> src(new SafetensorsSource());
  src->origin_ = index_path;
  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, const SafetensorsFile*> opened;
  for (const auto& [name, value] : index.at("weight_map").items()) {
    LLAMA_TP_CHECK(value.is_string(), index_path, ": weight_map entry for tensor ", name,
                   " must be a file name, but it is ", value.dump(), ".");
    const std::string file = value.get<std::string>();
    auto it = opened.find(file);
    if (it == opened.end()) {
      const std::string path = (dir / file).string();
      LLAMA_TP_CHECK(fs::is_regular_file(path), index_path, " maps tensor ", name, " to ", file,
                     ", but ", path, " does not exist; the download is incomplete.");
      src->files_.push_back(std::make_unique<SafetensorsFile>(path));
      it = opened.emplace(file, src->files_.back().get()).first;
    }
    LLAMA_TP_CHECK(it->second->has(name), index_path, " maps tensor ", name, " to ", it->second->path(),
                   ", but that file has no such tensor.");
    src->where_[name] = it->second;
  }
  return src;
}

std::unique_ptr<SafetensorsSource> SafetensorsSource::open_dir(const std::string& dir) {
  const fs::path d(dir);
  if (fs::is_regular_file(d / "model.safetensors.index.json"))
    return open_index((d / "model.safetensors.index.json").string());
  if (fs::is_regular_file(d / "model.safetensors")) return open_file((d / "model.safetensors").string());
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(d, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors")
      found.push_back(entry.path().string());
  LLAMA_TP_CHECK(!ec, "cannot list ", dir, ": ", ec.message(), ".");
  LLAMA_TP_CHECK(!found.empty(), "no model.safetensors, model.safetensors.index.json or other "
                 "*.safetensors file in ", dir, ".");
  LLAMA_TP_CHECK(found.size() == 1, dir, " holds ", found.size(),
                 " .safetensors files but no model.safetensors.index.json saying which tensor is where.");
  return open_file(found[0]);
}

std::vector<std::string> SafetensorsSource::names() const {
  std::vector<std::string> out;
  for (const auto& [name, f] : where_) out.push_back(name);
  return out;
}

bool SafetensorsSource::has(const std::string& name) const { return where_.count(name) != 0; }

const SafetensorsFile& SafetensorsSource::file_of(const std::string& name) const {
  auto it = where_.find(name);
  LLAMA_TP_CHECK(it != where_.end(), "tensor ", name, " is not in ", origin_,
                 "; the checkpoint does not match this model.");
  return *it->second;
}

TensorInfo SafetensorsSource::info(const std::string& name) const {
  const SafetensorsEntry& e = file_of(name).entry(name);
  return TensorInfo{e.dtype, e.shape};
}

Tensor SafetensorsSource::read_block(const std::string& name, int64_t row0, int64_t n_rows,
                                     int64_t col0, int64_t n_cols, DType out) const {
  const SafetensorsFile& f = file_of(name);
  return read_stored_block(f.stored(name), name, f.path(), row0, n_rows, col0, n_cols, out);
}

std::string SafetensorsSource::describe(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? origin_ : it->second->path();
}

}  // namespace llama_tp
