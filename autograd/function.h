#pragma once
// Custom differentiable functions, as torch.autograd.Function:
//
//   struct Scale : autograd::Function<Scale> {
//     static TensorList forward(FunctionCtx& ctx, const TensorList& in) {
//       ctx.save_for_backward({in[0]});  ctx.scalars["k"] = 2.0;
//       return {mul(in[0], 2.0)};
//     }
//     static TensorList backward(FunctionCtx& ctx, const TensorList& grad_out) {
//       return {mul(grad_out[0], ctx.scalars["k"])};
//     }
//   };
//   Tensor y = Scale::apply({x})[0];
//   Tensor z = Scale::apply({x}, {{"k", 3.0}})[0];   // scalar attributes, in ctx.scalars
//
// forward runs with gradient recording off; backward returns one gradient per input
// (undefined for inputs that get none). Scalar attributes given to apply() are in
// ctx.scalars when forward starts and stay there for backward. Register the name with MEMEL_REGISTER_OP so
// the gradient-check test covers it.
#include <map>
#include <string>

#include "autograd/node.h"
#include "autograd/registry.h"

namespace memel::autograd {

struct FunctionCtx {
  void save_for_backward(const TensorList& ts) {
    saved.clear();
    for (const Tensor& t : ts) saved.push_back(t.defined() ? t.detach() : Tensor());
  }
  TensorList saved;
  std::map<std::string, double> scalars;
  std::vector<bool> needs_input_grad;
};

template <typename Derived>
class CustomNode final : public Node {
 public:
  explicit CustomNode(std::string name) : name_(std::move(name)) {}
  TensorList apply(const TensorList& g) override {
    MEMEL_CHECK(!released_, "[autograd] backward through '", name_,
                "' a second time: its saved tensors were freed; pass retain_graph=true to the first backward");
    return Derived::backward(ctx, g);
  }
  void release() override {
    ctx.saved.clear();
    released_ = true;
  }
  std::string name() const override { return name_; }
  FunctionCtx ctx;

 private:
  std::string name_;
  bool released_ = false;
};

template <typename Derived>
class Function {
 public:
  // `name` must be registered; defaults to Derived::kName.
  static TensorList apply(const TensorList& inputs, const std::map<std::string, double>& attrs = {},
                          const char* name = Derived::kName) {
    auto node = std::make_shared<CustomNode<Derived>>(name);
    node->ctx.scalars = attrs;
    for (const Tensor& t : inputs) node->ctx.needs_input_grad.push_back(t.defined() && t.requires_grad());
    TensorList out;
    {
      NoGradGuard ng;
      out = Derived::forward(node->ctx, inputs);
    }
    if (!needs_grad(inputs)) return out;
    MEMEL_CHECK(is_registered(name), "[autograd] custom function '", name, "' is not registered");
    // Outputs may alias inputs: give each its own handle before attaching history.
    for (Tensor& o : out) o = o.detach();
    attach(node, out, inputs);
    return out;
  }
};

}  // namespace memel::autograd
