#pragma once
// The dynamic graph: every differentiable op that sees an input requiring grad records
// a Node whose edges point at the nodes that produced its inputs. backward() walks the
// graph in reverse topological order, summing gradients where paths join (fan-in).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace memel::autograd {

class Node;

// Where a gradient goes: input `input_nr` of `node`.
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;
  bool valid() const { return node != nullptr; }
};

using TensorList = std::vector<Tensor>;

class Node {
 public:
  virtual ~Node() = default;
  // Gradients w.r.t. this node's outputs -> gradients w.r.t. its inputs (one per edge;
  // an undefined tensor means "no gradient").
  virtual TensorList apply(const TensorList& grad_outputs) = 0;
  // Frees saved tensors after a backward without retain_graph.
  virtual void release() {}
  virtual std::string name() const = 0;
  uint32_t num_outputs = 1;
  std::vector<Edge> next_edges;
  // Shapes/dtypes of the outputs, so a missing output gradient can be zero-filled.
  std::vector<Shape> output_shapes;
  std::vector<DType> output_dtypes;
  std::vector<Device> output_devices;
};

// Accumulates the gradient into a leaf tensor's .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::weak_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  TensorList apply(const TensorList& grads) override;
  std::string name() const override { return "AccumulateGrad"; }

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

// While one lives on a thread, `fn(leaf)` is called each time a backward pass on that
// thread has accumulated a leaf's gradient (once per leaf and backward): data-parallel
// training starts the gradient all-reduce of a bucket while the backward goes on.
class OnGradReady {
 public:
  explicit OnGradReady(std::function<void(const Tensor& leaf)> fn);
  ~OnGradReady();
  OnGradReady(const OnGradReady&) = delete;
  OnGradReady& operator=(const OnGradReady&) = delete;

 private:
  std::function<void(const Tensor&)> previous_;
};

using BackwardFn = std::function<TensorList(const TensorList& grad_outputs)>;

// A node whose backward is a closure over what the forward saved. Saved outputs must be
// stored detached (Tensor::detach) so that a node never owns its own output.
class LambdaNode final : public Node {
 public:
  LambdaNode(std::string name, BackwardFn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  TensorList apply(const TensorList& grads) override;
  void release() override { fn_ = nullptr; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  BackwardFn fn_;
};

// Gradient mode: when disabled, ops record nothing.
bool grad_enabled();
void set_grad_enabled(bool on);

class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and any input requires grad.
bool needs_grad(const TensorList& inputs);

// The edge that receives the gradient of `t` (its grad_fn, or its leaf accumulator).
Edge gradient_edge(const Tensor& t);

// Attaches a node to freshly computed outputs if any input needs grad. `name` must be
// registered (see registry.h). Returns the outputs (now carrying grad_fn).
TensorList record(const char* name, TensorList outputs, const TensorList& inputs, BackwardFn backward);
Tensor record(const char* name, Tensor output, const TensorList& inputs, BackwardFn backward);
// Attaches an existing node (custom functions use this).
void attach(const std::shared_ptr<Node>& node, TensorList& outputs, const TensorList& inputs);

// Runs backward from `roots`. Each root's gradient defaults to ones for a one-element
// root. Without retain_graph the saved tensors of every visited node are freed, and a
// second backward through them throws.
void backward(const TensorList& roots, const TensorList& grad_roots = {}, bool retain_graph = false);

// Gradients of `outputs` w.r.t. `inputs` without touching .grad.
TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs = {},
                bool retain_graph = false);

}  // namespace memel::autograd

namespace memel {
using autograd::NoGradGuard;
// loss.backward() in PyTorch.
inline void backward(const Tensor& root, const Tensor& grad = Tensor(), bool retain_graph = false) {
  autograd::backward({root}, grad.defined() ? autograd::TensorList{grad} : autograd::TensorList{}, retain_graph);
}
}  // namespace memel
