#pragma once
// Errors are exceptions that carry file:line and a sentence a user can act on. main() catches
// them, prints "llama_tp: error: ..." once and ends every rank (see launch/main.cpp).
#include <sstream>
#include <stdexcept>
#include <string>

namespace llama_tp {

class Error : public std::runtime_error {
 public:
  Error(const std::string& message, const char* file, int line)
      : std::runtime_error(message), file_(file), line_(line) {}
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  const char* file_;
  int line_;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace llama_tp

// LLAMA_TP_FAIL("tensor ", name, " has shape ", ...) throws llama_tp::Error with file:line.
#define LLAMA_TP_FAIL(...) \
  throw ::llama_tp::Error(::llama_tp::detail::concat(__VA_ARGS__), __FILE__, __LINE__)
// LLAMA_TP_CHECK(cond, message parts...) throws when cond is false.
#define LLAMA_TP_CHECK(cond, ...)  \
  do {                             \
    if (!(cond)) LLAMA_TP_FAIL(__VA_ARGS__); \
  } while (0)
