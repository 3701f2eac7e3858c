#include "tensor/tensor.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <iomanip>
#include <sstream>

#include "core/rng.h"
#include "tensor/allocator.h"
#include "tensor/backend.h"

namespace memel {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
  }
  return "?";
}

std::string Device::str() const {
  switch (type) {
    case DeviceType::CPU: return "cpu";
    case DeviceType::CUDA: return "cuda:" + std::to_string(index);
    case DeviceType::Sim: return "sim";
  }
  return "?";
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "sim") return sim();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9 &&
      s.find_first_not_of("0123456789", 5) == std::string::npos)
    return cuda(std::stoi(s.substr(5)));
  MEMEL_FAIL("[device] unknown device '", s, "' (expected cpu, cuda, cuda:N or sim)");
}

std::string shape_str(const Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

// Shapes read from files can be hostile (docs/hardening.md): products that do not fit
// int64 are an error, not undefined behaviour.
int64_t shape_numel(const Shape& s) {
  for (int64_t d : s)
    if (d == 0) return 0;
  int64_t n = 1;
  for (int64_t d : s)
    MEMEL_CHECK(!__builtin_mul_overflow(n, d, &n), "[tensor] shape ", shape_str(s), " has too many elements");
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    if (i > 0)
      MEMEL_CHECK(!__builtin_mul_overflow(acc, std::max<int64_t>(s[i], 1), &acc), "[tensor] shape ", shape_str(s),
                  " is too large");
  }
  return st;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape r(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    MEMEL_CHECK(da == db || da == 1 || db == 1, "[", op, "] shapes ", shape_str(a), " and ", shape_str(b),
                " cannot be broadcast together");
    r[i] = da == 1 ? db : da;
  }
  return r;
}

int64_t wrap_axis(int64_t axis, int64_t dim, const char* op) {
  int64_t a = axis < 0 ? axis + dim : axis;
  MEMEL_CHECK(a >= 0 && a < std::max<int64_t>(dim, 1), "[", op, "] axis ", axis, " is out of range for a tensor of rank ",
              dim);
  return a;
}

Storage::Storage(size_t n, Device d) : nbytes(n), device(d) {
  allocator = &allocator_for(d);
  data = allocator->allocate(n);
}

Storage::Storage(std::shared_ptr<Storage> o, Device d)
    : data(o->data), nbytes(o->nbytes), device(d), owner(std::move(o)) {}

Storage::~Storage() {
  if (allocator) allocator->deallocate(data, nbytes);
}

void Tensor::check_host(const char* caller) const {
  MEMEL_CHECK(device().is_cpu(), "[tensor] ", caller, " reads a ", device().str(),
              " tensor through a host pointer; only cpu memory is host-addressable (use .to(Device::cpu()) or a "
              "backend kernel)");
}

Tensor Tensor::alias_as(Device d) const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(storage(), d);
  impl->shape = shape();
  impl->strides = strides();
  impl->offset = offset();
  impl->dtype = dtype();
  return Tensor(impl);
}

namespace {
std::shared_ptr<TensorImpl> make_impl(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) MEMEL_CHECK(d >= 0, "[tensor] negative dimension in shape ", shape_str(shape));
  Shape strides = contiguous_strides(shape);  // checks that every stride fits int64
  size_t nbytes = 0;
  MEMEL_CHECK(!__builtin_mul_overflow(static_cast<size_t>(shape_numel(shape)), dtype_size(dtype), &nbytes),
              "[tensor] shape ", shape_str(shape), " is too large");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(nbytes, device);
  impl->shape = shape;
  impl->strides = std::move(strides);
  impl->dtype = dtype;
  return impl;
}

template <typename S>
Tensor from_host(const std::vector<S>& v, const Shape& shape, DType dtype) {
  MEMEL_CHECK(static_cast<int64_t>(v.size()) == shape_numel(shape), "[tensor] from_vector: ", v.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor t = Tensor::empty(shape, dtype);
  MEMEL_DISPATCH_ALL(dtype, "from_vector", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<scalar_t>(v[i]);
  });
  return t;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) { return Tensor(make_impl(shape, dtype, device)); }
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}
Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }
Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return from_host(v, {n}, dtype).to(device);
}
Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& s, DType t) { return from_host(v, s, t); }
Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& s, DType t) { return from_host(v, s, t); }
Tensor Tensor::from_vector(const std::vector<int64_t>& v, const Shape& s, DType t) { return from_host(v, s, t); }
Tensor Tensor::from_vector(const std::vector<int32_t>& v, const Shape& s, DType t) { return from_host(v, s, t); }

Tensor Tensor::uniform(const Shape& shape, double lo, double hi, DType dtype, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape, dtype);
  MEMEL_DISPATCH_FLOAT(dtype, "uniform", [&] {
    scalar_t* p = t.data<scalar_t>();
    int64_t n = t.numel();
    uint64_t off = g.reserve(static_cast<uint64_t>(n));
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(lo + (hi - lo) * philox_uniform(g.seed(), off, i));
  });
  return t;
}
Tensor Tensor::rand(const Shape& shape, DType dtype, Generator* gen) { return uniform(shape, 0.0, 1.0, dtype, gen); }
Tensor Tensor::randn(const Shape& shape, DType dtype, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape, dtype);
  MEMEL_DISPATCH_FLOAT(dtype, "randn", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<scalar_t>(g.normal());
  });
  return t;
}

int64_t Tensor::size(int64_t axis) const { return shape()[wrap_axis(axis, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expect) return false;
    expect *= shape()[i];
  }
  return true;
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  MEMEL_CHECK(shape.size() == strides.size(), "[as_strided] shape ", shape_str(shape), " and strides ",
              shape_str(strides), " differ in rank");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = dtype();
  return Tensor(impl);
}

Tensor Tensor::contiguous_copy() const {
  Tensor out = empty(shape(), dtype(), device());
  backend_for(device()).copy(*this, out);
  return out;
}

Tensor Tensor::to_dtype(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(shape(), t, device());
  backend_for(device()).copy(*this, out);
  return out;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor src = is_contiguous() ? *this : contiguous_copy();
  Tensor out = empty(shape(), dtype(), d);
  if (nbytes() == 0) return out;
  if (d.is_cpu()) {
    backend_for(device()).memcpy_host(out.device_data(), src.device_data(), nbytes(), false);
  } else if (device().is_cpu()) {
    backend_for(d).memcpy_host(out.device_data(), src.device_data(), nbytes(), true);
  } else {  // between two devices: through the host
    Tensor h = src.to(Device::cpu());
    backend_for(d).memcpy_host(out.device_data(), h.device_data(), nbytes(), true);
  }
  return out;
}

void Tensor::move_to_(Device d) {
  if (device() == d) return;
  const Tensor moved = to(d);
  TensorImpl& i = impl();
  i.storage = moved.storage();
  i.strides = moved.strides();
  i.offset = moved.offset();
}

void Tensor::copy_from(const Tensor& src) {
  MEMEL_CHECK(src.shape() == shape(), "[copy_from] source shape ", shape_str(src.shape()), " differs from ",
              shape_str(shape()));
  Tensor s = src.to(device());
  backend_for(device()).copy(s, *this);
}

void Tensor::fill_(double value) { backend_for(device()).fill(*this, value); }

double Tensor::item() const {
  MEMEL_CHECK(numel() == 1, "[item] expected a tensor with one element, got shape ", shape_str(shape()));
  return to_vector()[0];
}

std::vector<double> Tensor::to_vector() const { return to_vector_as<double>(); }

template <typename T>
std::vector<T> Tensor::to_vector_as() const {
  Tensor c = to(Device::cpu());
  if (!c.is_contiguous() || c.dtype() != DTypeOf<T>::value) c = c.to_dtype(DTypeOf<T>::value).contiguous_copy();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector_as<float>() const;
template std::vector<double> Tensor::to_vector_as<double>() const;
template std::vector<int32_t> Tensor::to_vector_as<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector_as<int64_t>() const;

Tensor& Tensor::set_requires_grad(bool r) {
  MEMEL_CHECK(!r || is_floating(dtype()), "[requires_grad] only floating tensors can require grad, got ",
              dtype_name(dtype()));
  MEMEL_CHECK(is_leaf(), "[requires_grad] can only be set on a leaf tensor (use detach() first)");
  impl().requires_grad = r;
  return *this;
}

Tensor Tensor::detach() const {
  Tensor t = as_strided(shape(), strides(), offset());
  return t;
}

std::string Tensor::to_string(int64_t max_per_axis) const {
  std::ostringstream os;
  os << "Tensor(shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype()) << ", device=" << device().str();
  if (requires_grad()) os << ", requires_grad";
  if (impl().grad_fn) os << ", grad_fn";
  os << ")\n";
  std::vector<double> v = to_vector();
  Shape st = contiguous_strides(shape());
  bool integer = !is_floating(dtype());
  os << std::setprecision(6);
  // Recursive printer with per-axis truncation ("...").
  std::function<void(int64_t, int64_t, int)> rec = [&](int64_t axis, int64_t base, int indent) {
    if (axis == dim()) {
      if (integer)
        os << static_cast<int64_t>(v[base]);
      else
        os << v[base];
      return;
    }
    int64_t n = shape()[axis];
    os << "[";
    for (int64_t i = 0; i < n; ++i) {
      if (n > max_per_axis && i == max_per_axis / 2) {
        os << "...";
        i = n - max_per_axis / 2 - 1;
        if (axis + 1 < dim()) os << ",\n" << std::string(indent + 1, ' ');
        else os << ", ";
        continue;
      }
      rec(axis + 1, base + i * st[axis], indent + 1);
      if (i + 1 < n) {
        if (axis + 1 < dim()) os << ",\n" << std::string(indent + 1, ' ');
        else os << ", ";
      }
    }
    os << "]";
  };
  rec(0, 0, 0);
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

}  // namespace memel
