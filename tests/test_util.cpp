#include "test_util.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sys/wait.h>

namespace llama_tp::test {

std::string shared_dir() {
  if (const char* env = std::getenv("LLAMA_TP_SHARED")) return env;
  return LLAMA_TP_SHARED_DIR;
}

std::string shared_path(const std::string& rel) {
  std::string p = shared_dir() + "/" + rel;
  return std::filesystem::exists(p) ? p : std::string();
}

std::string llama_tp_binary() {
  // LLAMA_TP_BIN points the tests at a binary elsewhere (the GPU machine runs a carried copy).
  if (const char* env = std::getenv("LLAMA_TP_BIN")) return env;
  return LLAMA_TP_BINARY;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

uint32_t fresh_seed() { return std::random_device{}(); }

std::vector<float> rounded(const std::vector<float>& v, DType dt) {
  std::vector<uint8_t> buf(v.size() * dtype_size(dt));
  convert_from_f32(v.data(), dt, buf.data(), v.size());
  std::vector<float> out(v.size());
  convert_to_f32(buf.data(), dt, out.data(), v.size());
  return out;
}

double rel_error(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

CommandResult run_command(const std::string& cmd) {
  CommandResult r{-1, {}, {}, 0};
  const std::string err_file = make_temp_dir("cmd") + "/stderr";
  const auto t0 = std::chrono::steady_clock::now();
  FILE* p = popen(("(" + cmd + ") 2>" + err_file).c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, got);
  int status = pclose(p);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(err_file);
  r.errors.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return r;
}

std::string mpirun(int n_ranks) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " + std::string(LLAMA_TP_MPIEXEC) +
         " --oversubscribe -np " + std::to_string(n_ranks) + " ";
}

std::string make_temp_dir(const std::string& tag) {
  std::string pattern = (std::filesystem::temp_directory_path() / ("llama_tp_" + tag + "_XXXXXX")).string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back(0);
  if (!mkdtemp(buf.data())) return std::filesystem::temp_directory_path().string();
  return buf.data();
}

}  // namespace llama_tp::test
