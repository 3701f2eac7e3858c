#include "tensor/host_stage.h"

namespace memel {

void on_host(const std::vector<Tensor*>& in, const std::vector<Tensor*>& io, const std::function<void()>& fn) {
  std::vector<Tensor*> all(in);
  all.insert(all.end(), io.begin(), io.end());
  std::vector<Tensor> saved;
  saved.reserve(all.size());
  for (Tensor* t : all) saved.push_back(*t);
  auto restore = [&] {
    for (size_t i = 0; i < all.size(); ++i) *all[i] = saved[i];
  };
  try {
    for (Tensor* t : all)
      if (t->defined()) *t = t->to(Device::cpu());
    fn();
    for (size_t i = in.size(); i < all.size(); ++i) {
      const Tensor& orig = saved[i];
      if (orig.defined() && all[i]->impl_ptr() != orig.impl_ptr()) {
        Tensor dst = orig;
        dst.copy_from(*all[i]);
      }
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

}  // namespace memel
