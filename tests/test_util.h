#pragma once
// Helpers shared by the test suites: where ../shared is, random inputs, error measures.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/dtype.h"

namespace llama_tp::test {

// Folder holding models/ and tokenizers/ (env LLAMA_TP_SHARED, else ../shared beside the checkout).
std::string shared_dir();
// shared_dir() + "/" + rel if it exists, else "" (callers GTEST_SKIP with a message naming it).
std::string shared_path(const std::string& rel);
// The llama_tp executable built with the tests.
std::string llama_tp_binary();

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f);
// A new seed per call, so every run checks fresh inputs.
uint32_t fresh_seed();
// v rounded to dtype dt and back to float32 (what a 16-bit tensor of v holds).
std::vector<float> rounded(const std::vector<float>& v, DType dt);
// ||a-b|| / ||b|| over n elements.
double rel_error(const float* a, const float* b, size_t n);
double max_abs_diff(const float* a, const float* b, size_t n);

// Runs a shell command, returns its exit status, its stdout and its stderr.
struct CommandResult {
  int exit_code;
  std::string output;  // stdout
  std::string errors;  // stderr
  double seconds;
};
CommandResult run_command(const std::string& cmd);
// "mpirun -np N --oversubscribe" (allowed as root), ready to prefix a command.
std::string mpirun(int n_ranks);
// A fresh empty directory under the system temp dir.
std::string make_temp_dir(const std::string& tag);

}  // namespace llama_tp::test
