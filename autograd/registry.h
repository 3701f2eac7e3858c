#pragma once
// The list of differentiable ops. Every op that records a node registers its name once
// (MEMEL_REGISTER_OP in the .cpp that defines it); the gradient-check test walks this
// list and fails for any op without a finite-difference check.
#include <string>
#include <vector>

namespace memel::autograd {

struct OpInfo {
  std::string name;
  std::string file;
  bool differentiable = true;  // false: explicitly has no backward (e.g. comparisons)
};

const char* register_op(const char* name, const char* file, bool differentiable = true);
std::vector<OpInfo> registered_ops();
bool is_registered(const std::string& name);

}  // namespace memel::autograd

#define MEMEL_OP_CAT2(a, b) a##b
#define MEMEL_OP_CAT(a, b) MEMEL_OP_CAT2(a, b)
#define MEMEL_REGISTER_OP(name) \
  static const char* MEMEL_OP_CAT(memel_op_reg_, __LINE__) = ::memel::autograd::register_op(name, __FILE__)
#define MEMEL_REGISTER_NONDIFF_OP(name) \
  static const char* MEMEL_OP_CAT(memel_op_reg_, __LINE__) = ::memel::autograd::register_op(name, __FILE__, false)
