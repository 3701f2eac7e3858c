#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/registry.h"
#include "tensor/backend.h"

namespace memel::autograd {

namespace {
thread_local bool t_grad_enabled = true;

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, OpInfo>& registry() {
  static std::map<std::string, OpInfo> r;
  return r;
}
}  // namespace

const char* register_op(const char* name, const char* file, bool differentiable) {
  std::lock_guard<std::mutex> lk(registry_mutex());
  const char* base = std::strrchr(file, '/');
  registry()[name] = OpInfo{name, base ? base + 1 : file, differentiable};
  return name;
}

std::vector<OpInfo> registered_ops() {
  std::lock_guard<std::mutex> lk(registry_mutex());
  std::vector<OpInfo> v;
  for (auto& kv : registry()) v.push_back(kv.second);
  return v;
}

bool is_registered(const std::string& name) {
  std::lock_guard<std::mutex> lk(registry_mutex());
  return registry().count(name) != 0;
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool on) { t_grad_enabled = on; }

bool needs_grad(const TensorList& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined()) return {};
  TensorImpl& impl = t.impl();
  if (impl.grad_fn) return {impl.grad_fn, impl.output_nr};
  if (!impl.requires_grad) return {};
  if (!impl.grad_accumulator) impl.grad_accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return {impl.grad_accumulator, 0};
}

void attach(const std::shared_ptr<Node>& node, TensorList& outputs, const TensorList& inputs) {
  node->next_edges.clear();
  for (const Tensor& in : inputs) node->next_edges.push_back(gradient_edge(in));
  node->num_outputs = static_cast<uint32_t>(outputs.size());
  node->output_shapes.clear();
  node->output_dtypes.clear();
  node->output_devices.clear();
  for (uint32_t i = 0; i < outputs.size(); ++i) {
    Tensor& o = outputs[i];
    node->output_shapes.push_back(o.shape());
    node->output_dtypes.push_back(o.dtype());
    node->output_devices.push_back(o.device());
    if (!is_floating(o.dtype())) continue;
    // Results of an op are fresh handles: set their history directly.
    TensorImpl& impl = o.impl();
    impl.grad_fn = node;
    impl.output_nr = i;
    impl.requires_grad = true;
  }
}

TensorList record(const char* name, TensorList outputs, const TensorList& inputs, BackwardFn backward) {
  if (!needs_grad(inputs)) return outputs;
  MEMEL_CHECK(is_registered(name), "[autograd] op '", name, "' records a node but is not registered");
  auto node = std::make_shared<LambdaNode>(name, std::move(backward));
  attach(node, outputs, inputs);
  return outputs;
}

Tensor record(const char* name, Tensor output, const TensorList& inputs, BackwardFn backward) {
  return record(name, TensorList{std::move(output)}, inputs, std::move(backward))[0];
}

TensorList LambdaNode::apply(const TensorList& grads) {
  MEMEL_CHECK(fn_ != nullptr, "[autograd] backward through '", name_,
              "' a second time: its saved tensors were freed; pass retain_graph=true to the first backward");
  return fn_(grads);
}

namespace {
thread_local std::function<void(const Tensor&)> t_grad_ready;
}

OnGradReady::OnGradReady(std::function<void(const Tensor& leaf)> fn) : previous_(std::move(t_grad_ready)) {
  t_grad_ready = std::move(fn);
}
OnGradReady::~OnGradReady() { t_grad_ready = std::move(previous_); }

TensorList AccumulateGrad::apply(const TensorList& grads) {
  auto leaf = leaf_.lock();
  if (!leaf || !grads[0].defined()) return {};
  const Tensor& g = grads[0];
  MEMEL_CHECK(g.shape() == leaf->shape, "[autograd] gradient of shape ", shape_str(g.shape()),
              " for a leaf of shape ", shape_str(leaf->shape));
  if (!leaf->grad) {
    bool exclusive = g.impl_ptr().use_count() <= 1 && g.is_contiguous() && g.offset() == 0 &&
                     g.storage().use_count() == 1 && g.dtype() == leaf->dtype;
    Tensor owned = exclusive ? g : g.to_dtype(leaf->dtype).contiguous_copy();
    owned.impl().grad_fn.reset();
    owned.impl().requires_grad = false;
    leaf->grad = owned.impl_ptr();
  } else {
    Tensor acc(leaf->grad);
    backend_for(acc).binary(BinaryOp::Add, acc, g.to_dtype(acc.dtype()), acc);
  }
  if (t_grad_ready) t_grad_ready(Tensor(leaf));
  return {};
}

namespace {

struct Engine {
  // Gradients waiting for each node, one slot per node output.
  std::unordered_map<Node*, TensorList> buffers;
  std::unordered_map<Node*, int> deps;
  std::unordered_map<Node*, std::shared_ptr<Node>> keep;
  // grad() mode: capture the gradient flowing into these edges, skip leaf accumulation.
  bool capture_mode = false;
  std::map<std::pair<Node*, uint32_t>, size_t> captures;
  TensorList captured;

  void add_to(Node* n, uint32_t slot, const Tensor& g) {
    TensorList& buf = buffers[n];
    if (buf.size() < n->num_outputs) buf.resize(n->num_outputs);
    if (!buf[slot].defined())
      buf[slot] = g;
    else
      buf[slot] = add(buf[slot], g);
  }

  void count_deps(const std::vector<std::shared_ptr<Node>>& roots) {
    std::vector<Node*> stack;
    std::unordered_set<Node*> seen;
    for (auto& r : roots) {
      keep[r.get()] = r;
      if (seen.insert(r.get()).second) stack.push_back(r.get());
    }
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->next_edges) {
        if (!e.valid()) continue;
        Node* m = e.node.get();
        keep[m] = e.node;
        ++deps[m];
        if (seen.insert(m).second) stack.push_back(m);
      }
    }
  }

  void run(const std::vector<Edge>& root_edges, const TensorList& root_grads, bool retain_graph) {
    std::vector<std::shared_ptr<Node>> roots;
    for (const Edge& e : root_edges) roots.push_back(e.node);
    count_deps(roots);
    for (size_t i = 0; i < root_edges.size(); ++i) add_to(root_edges[i].node.get(), root_edges[i].input_nr, root_grads[i]);
    std::vector<Node*> ready;
    for (auto& r : roots)
      if (deps[r.get()] == 0 && std::find(ready.begin(), ready.end(), r.get()) == ready.end()) ready.push_back(r.get());
    NoGradGuard no_grad;
    while (!ready.empty()) {
      Node* n = ready.back();
      ready.pop_back();
      TensorList grads = std::move(buffers[n]);
      buffers.erase(n);
      grads.resize(n->num_outputs);
      bool any = false;
      for (uint32_t i = 0; i < n->num_outputs; ++i) {
        if (capture_mode) {
          auto it = captures.find({n, i});
          if (it != captures.end() && grads[i].defined()) captured[it->second] = grads[i];
        }
        if (grads[i].defined()) any = true;
      }
      TensorList out;
      bool is_leaf_acc = dynamic_cast<AccumulateGrad*>(n) != nullptr;
      if (any && !(capture_mode && is_leaf_acc)) {
        for (uint32_t i = 0; i < n->num_outputs; ++i)
          if (!grads[i].defined() && i < n->output_shapes.size())
            grads[i] = Tensor::zeros(n->output_shapes[i], n->output_dtypes[i], n->output_devices[i]);
        out = n->apply(grads);
        MEMEL_CHECK(is_leaf_acc || out.size() == n->next_edges.size(), "[autograd] node '", n->name(), "' returned ",
                    out.size(), " gradients for ", n->next_edges.size(), " inputs");
      }
      if (!retain_graph) n->release();
      for (size_t i = 0; i < n->next_edges.size(); ++i) {
        const Edge& e = n->next_edges[i];
        if (!e.valid()) continue;
        Node* m = e.node.get();
        if (i < out.size() && out[i].defined()) add_to(m, e.input_nr, out[i]);
        if (--deps[m] == 0) ready.push_back(m);
      }
    }
  }
};

std::vector<Edge> root_edges_of(const TensorList& roots) {
  std::vector<Edge> edges;
  for (const Tensor& r : roots) {
    Edge e = gradient_edge(r);
    MEMEL_CHECK(e.valid(), "[backward] tensor of shape ", shape_str(r.shape()),
                " does not require grad and has no grad_fn");
    edges.push_back(e);
  }
  return edges;
}

TensorList default_root_grads(const TensorList& roots, const TensorList& grads) {
  TensorList g = grads;
  if (g.empty()) {
    for (const Tensor& r : roots) {
      MEMEL_CHECK(r.numel() == 1, "[backward] gradient can be implied only for a one-element output, got shape ",
                  shape_str(r.shape()));
      g.push_back(Tensor::ones(r.shape(), r.dtype(), r.device()));
    }
  }
  MEMEL_CHECK(g.size() == roots.size(), "[backward] ", g.size(), " gradients for ", roots.size(), " outputs");
  for (size_t i = 0; i < g.size(); ++i)
    MEMEL_CHECK(g[i].shape() == roots[i].shape(), "[backward] gradient shape ", shape_str(g[i].shape()),
                " does not match output shape ", shape_str(roots[i].shape()));
  return g;
}

}  // namespace

void backward(const TensorList& roots, const TensorList& grad_roots, bool retain_graph) {
  Engine e;
  e.run(root_edges_of(roots), default_root_grads(roots, grad_roots), retain_graph);
}

TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs,
                bool retain_graph) {
  Engine e;
  e.capture_mode = true;
  e.captured.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    Edge ed = gradient_edge(inputs[i]);
    MEMEL_CHECK(ed.valid(), "[grad] input ", i, " does not require grad");
    e.captures[{ed.node.get(), ed.input_nr}] = i;
  }
  e.run(root_edges_of(outputs), default_root_grads(outputs, grad_outputs), retain_graph);
  return e.captured;
}

}  // namespace memel::autograd
