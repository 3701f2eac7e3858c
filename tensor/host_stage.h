#pragma once
// Host staging for algorithms that exist only as host code (the memel layer's pass and
// merge, see docs/backends.md): runs `fn` with each tensor in `in` and `io` replaced by a
// host copy, then copies the `io` tensors back into their original memory and restores the
// handles. A tensor the host already addresses (the CPU's) is not copied: `Tensor::to`
// returns it unchanged, so on the CPU this is a direct call with no cost and bit-identical
// results. On any other device the numbers are the CPU's, bit for bit.
//
// `fn` must not replace the tensors it is given (write into them). Undefined tensors are
// passed through.
#include <functional>
#include <vector>

#include "tensor/tensor.h"

namespace memel {

void on_host(const std::vector<Tensor*>& in, const std::vector<Tensor*>& io, const std::function<void()>& fn);

}  // namespace memel
