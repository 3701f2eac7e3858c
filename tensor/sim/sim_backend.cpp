#include "tensor/sim/sim_backend.h"

#include <cstdlib>
#include <cstring>

#include "tensor/allocator.h"

namespace memel {
namespace {

void* sim_raw_alloc(size_t n) { return std::aligned_alloc(64, (n + 63) & ~size_t(63)); }
void sim_raw_free(void* p) { std::free(p); }

// The CPU's view of a sim tensor (the same memory); undefined stays undefined.
Tensor host(const Tensor& t) { return t.defined() ? t.alias_as(Device::cpu()) : Tensor(); }

class SimBackend final : public Backend {
 public:
  Device device() const override { return Device::sim(); }
  Allocator& allocator() override {
    // Leaked on purpose, as the CPU's: tensors in static objects may outlive main.
    static CachingAllocator* a = new CachingAllocator(sim_raw_alloc, sim_raw_free, size_t(1) << 30);
    return *a;
  }
  std::string describe() const override { return "simulated accelerator (core kernels only, fused ones composed)"; }

  void copy(const Tensor& src, Tensor& dst) override {
    Tensor d = host(dst);
    cpu().copy(host(src), d);
  }
  void fill(Tensor& dst, double value) override {
    Tensor d = host(dst);
    cpu().fill(d, value);
  }
  void memcpy_host(void* dst, const void* src, size_t nbytes, bool) override { std::memcpy(dst, src, nbytes); }
  void unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) override {
    Tensor o = host(out);
    cpu().unary(op, host(x), o, alpha);
  }
  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                      double alpha) override {
    Tensor g = host(gx);
    cpu().unary_backward(op, host(x), host(y), host(gy), g, alpha);
  }
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override {
    Tensor o = host(out);
    cpu().binary(op, host(a), host(b), o);
  }
  void reduce(ReduceOp op, const Tensor& x, Tensor& out) override {
    Tensor o = host(out);
    cpu().reduce(op, host(x), o);
  }
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override {
    Tensor o = host(out);
    cpu().where(host(cond), host(a), host(b), o);
  }
  void argmax_last(const Tensor& x, Tensor& out) override {
    Tensor o = host(out);
    cpu().argmax_last(host(x), o);
  }
  void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c) override {
    Tensor o = host(c);
    cpu().gemm(ta, tb, alpha, host(a), host(b), beta, o);
  }
  void uniform(uint64_t seed, uint64_t offset, Tensor& out) override {
    Tensor o = host(out);
    cpu().uniform(seed, offset, o);
  }
  void index_select(const Tensor& x, const Tensor& ids, Tensor& out, const char* op) override {
    Tensor o = host(out);
    cpu().index_select(host(x), host(ids), o, op);
  }
  void index_add(const Tensor& src, const Tensor& ids, Tensor& out, const char* op) override {
    Tensor o = host(out);
    cpu().index_add(host(src), host(ids), o, op);
  }

  void index_put(const Tensor& src, const Tensor& ids, Tensor& out, const char* op) override {
    Tensor o = host(out);
    cpu().index_put(host(src), host(ids), o, op);
  }

 private:
  static Backend& cpu() { return cpu_backend(); }
};

}  // namespace

Backend& sim_backend() {
  static SimBackend b;
  return b;
}

}  // namespace memel
