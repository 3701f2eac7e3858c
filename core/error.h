#pragma once
// Project error type and CHECK macros. Library code throws memel::Error; it never exits.
#include <sstream>
#include <stdexcept>
#include <string>

namespace memel {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Concatenates all arguments with operator<< into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);

}  // namespace memel

// MEMEL_CHECK(cond, "[op] message parts", ...): throws memel::Error with the message
// (file:line appended) when cond is false.
#define MEMEL_CHECK(cond, ...)                                                  \
  do {                                                                          \
    if (!(cond)) ::memel::throw_error(__FILE__, __LINE__, ::memel::str_cat(__VA_ARGS__)); \
  } while (0)

#define MEMEL_FAIL(...) ::memel::throw_error(__FILE__, __LINE__, ::memel::str_cat(__VA_ARGS__))
