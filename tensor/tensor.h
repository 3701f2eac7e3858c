#pragma once
// Tensor: shared storage + a view (shape, strides in elements, offset, dtype, device),
// as PyTorch's TensorImpl. Copying a Tensor copies the handle, not the data.
// Differentiable operations on tensors are free functions declared in autograd/ops.h.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace memel {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(2, 3)"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
// Broadcast two shapes (numpy rules); throws naming `op` when they are incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Normalises a possibly negative axis for a tensor of rank `dim`.
int64_t wrap_axis(int64_t axis, int64_t dim, const char* op);

class Allocator;
namespace autograd {
class Node;
}

// Memory on one device: owned (allocated from the device's allocator, returned on
// destruction) or an alias of another storage's memory (kept alive by `owner`).
struct Storage {
  Storage(size_t nbytes, Device device);
  Storage(std::shared_ptr<Storage> owner, Device device);  // alias of owner's memory
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Allocator* allocator = nullptr;  // null for an alias
  std::shared_ptr<Storage> owner;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;
  DType dtype = DType::F32;
  // Autograd state. A leaf that requires grad gets a gradient accumulator node;
  // a non-leaf result points at the node that made it (grad_fn, output_nr).
  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;
  uint32_t output_nr = 0;
  std::shared_ptr<autograd::Node> grad_accumulator;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- creation -------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor arange(int64_t n, DType dtype = DType::I64, Device device = Device::cpu());
  // Values from host memory, converted to `dtype`.
  static Tensor from_vector(const std::vector<float>& v, const Shape& shape, DType dtype = DType::F32);
  static Tensor from_vector(const std::vector<double>& v, const Shape& shape, DType dtype = DType::F64);
  static Tensor from_vector(const std::vector<int64_t>& v, const Shape& shape, DType dtype = DType::I64);
  static Tensor from_vector(const std::vector<int32_t>& v, const Shape& shape, DType dtype = DType::I32);
  // Random tensors from the given generator (default: the process generator).
  static Tensor rand(const Shape& shape, DType dtype = DType::F32, class Generator* gen = nullptr);   // U[0,1)
  static Tensor randn(const Shape& shape, DType dtype = DType::F32, class Generator* gen = nullptr);  // N(0,1)
  static Tensor uniform(const Shape& shape, double lo, double hi, DType dtype = DType::F32, class Generator* gen = nullptr);

  // --- properties -----------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t size(int64_t axis) const;  // negative axes count from the end
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t numel() const { return shape_numel(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  bool is_contiguous() const;
  bool same_storage(const Tensor& o) const { return impl().storage == o.impl().storage; }
  TensorImpl& impl() const {
    MEMEL_CHECK(impl_, "[tensor] use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // Typed pointer to element 0 of the view, for host code. Only CPU memory is
  // host-addressable: on any other device it throws, naming `caller` (the calling
  // function by default); move the tensor with to(Device::cpu()) first.
  template <typename T>
  T* data(const char* caller = __builtin_FUNCTION()) const {
    MEMEL_CHECK(DTypeOf<T>::value == dtype(), "[tensor] data<", dtype_name(DTypeOf<T>::value),
                "> on a tensor of dtype ", dtype_name(dtype()), " (in ", caller, ")");
    check_host(caller);
    return static_cast<T*>(impl().storage->data) + impl().offset;
  }
  void* raw_data(const char* caller = __builtin_FUNCTION()) const {
    check_host(caller);
    return device_data();
  }
  // Address of element 0 on the tensor's own device, never dereferenced by host code:
  // for backends and host transfers.
  void* device_data() const {
    return static_cast<char*>(impl().storage->data) + impl().offset * static_cast<int64_t>(dtype_size(dtype()));
  }
  // The same view of the same memory, labelled as device `d` (no copy). For backends
  // only: the simulated device runs the CPU kernels on aliases of its memory.
  Tensor alias_as(Device d) const;
  double item() const;                      // the single element, as double
  std::vector<double> to_vector() const;    // all elements in row-major order
  template <typename T> std::vector<T> to_vector_as() const;

  // --- raw views and copies (no autograd; see autograd/ops.h for differentiable ones)
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;
  Tensor contiguous_copy() const;          // always copies into fresh contiguous memory
  Tensor to_dtype(DType t) const;          // copy with conversion (self if same dtype)
  Tensor to(Device d) const;               // copy to another device (self if same)
  // Moves this tensor's memory to device d in place (contiguous): every handle to this
  // tensor sees the new device, views made earlier keep the old memory. For a module's
  // parameters and buffers (Module::to), as PyTorch's `param.data = param.data.to(d)`.
  void move_to_(Device d);
  void copy_from(const Tensor& src);       // same shape; converts dtype and device
  void fill_(double value);
  void zero_() { fill_(0.0); }

  // --- autograd state -------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool r = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  void zero_grad() { impl().grad.reset(); }
  void retain_grad() { impl().retains_grad = true; }
  // Same data, no history, does not require grad.
  Tensor detach() const;

  std::string to_string(int64_t max_per_axis = 6) const;

 private:
  void check_host(const char* caller) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace memel
