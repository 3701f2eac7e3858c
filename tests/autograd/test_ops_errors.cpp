// Bad inputs into every op family give a memel::Error whose message names the op in
// brackets ("[conv2d] ..."); nothing crashes, nothing returns garbage.
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"

using namespace memel;

namespace {

Tensor f32(const Shape& s) { return Tensor::ones(s, DType::F32); }
Tensor f64(const Shape& s) { return Tensor::ones(s, DType::F64); }
Tensor i64(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector(v, s); }

struct BadCall {
  const char* tag;   // expected in the message, e.g. "[conv2d]"
  const char* what;  // what is wrong
  std::function<void()> call;
};

Conv2dOptions stride(int s) {
  Conv2dOptions o;
  o.stride_h = o.stride_w = s;
  return o;
}

std::vector<BadCall> bad_calls() {
  return {
      // views and shape
      {"[reshape]", "element count differs", [] { reshape(f32({2, 3}), {4, 2}); }},
      {"[reshape]", "two -1", [] { reshape(f32({2, 3}), {-1, -1}); }},
      {"[permute]", "order too short", [] { permute(f32({2, 3}), {0}); }},
      {"[permute]", "repeated axis", [] { permute(f32({2, 3}), {1, 1}); }},
      {"[transpose]", "axis out of range", [] { transpose(f32({2, 3}), 0, 2); }},
      {"[slice]", "step 0", [] { slice(f32({4}), 0, 0, 4, 0); }},
      {"[slice]", "axis out of range", [] { slice(f32({4}), 1, 0, 1); }},
      {"[select]", "index out of range", [] { select(f32({2, 3}), 1, 3); }},
      {"[squeeze]", "axis of size 3", [] { squeeze(f32({2, 3}), 1); }},
      {"[unsqueeze]", "axis out of range", [] { unsqueeze(f32({2, 3}), 4); }},
      {"[expand]", "size 2 to 4", [] { expand(f32({3, 2}), {3, 4}); }},
      {"[expand]", "fewer axes", [] { expand(f32({2, 3}), {3}); }},
      {"[concat]", "sizes differ off the axis", [] { concat({f32({2, 3}), f32({3, 3})}, 1); }},
      {"[concat]", "ranks differ", [] { concat({f32({2, 3}), f32({3})}, 0); }},
      {"[concat]", "no tensors", [] { concat({}, 0); }},
      {"[stack]", "shapes differ", [] { stack({f32({2}), f32({3})}, 0); }},
      {"[split]", "sizes do not sum to the axis", [] { split(f32({5}), {2, 2}, 0); }},
      {"[roll]", "shifts and axes differ in count", [] { roll(f32({5}), {1, 2}, {0}); }},
      {"[pad]", "more pads than axes", [] { pad(f32({3}), {1, 1, 1, 1}); }},
      {"[pad]", "negative pad", [] { pad(f32({3}), {-1, 0}); }},
      // elementwise
      {"[add]", "shapes do not broadcast", [] { add(f32({2, 3}), f32({2})); }},
      {"[sub]", "shapes do not broadcast", [] { sub(f32({4}), f32({3})); }},
      {"[mul]", "dtypes differ", [] { mul(f32({2}), f64({2})); }},
      {"[div]", "shapes do not broadcast", [] { div(f32({2, 3}), f32({3, 2})); }},
      {"[maximum]", "shapes do not broadcast", [] { maximum(f32({2}), f32({3})); }},
      {"[minimum]", "shapes do not broadcast", [] { minimum(f32({2}), f32({3})); }},
      {"[where]", "cond does not broadcast", [] { where(f32({4}), f32({3}), f32({3})); }},
      {"[eq]", "shapes do not broadcast", [] { eq(f32({2}), f32({3})); }},
      {"[exp]", "integer input", [] { exp(i64({1, 2}, {2})); }},
      {"[gelu]", "integer input", [] { gelu(i64({1, 2}, {2})); }},
      {"[clamp]", "lo > hi", [] { clamp(f32({2}), 1.0, 0.0); }},
      // reductions
      {"[sum]", "axis out of range", [] { sum(f32({2, 3}), {2}); }},
      {"[mean]", "axis out of range", [] { mean(f32({2, 3}), {-3}); }},
      {"[amax]", "axis out of range", [] { amax(f32({2, 3}), {5}); }},
      {"[amax]", "empty axis", [] { amax(f32({2, 0}), {1}); }},
      {"[var]", "one element per reduction", [] { var(f32({3, 1}), {1}); }},
      {"[argmax]", "axis out of range", [] { argmax(f32({2, 3}), 2); }},
      {"[sum_to]", "target has more axes", [] { sum_to(f32({3}), {2, 3}); }},
      // linear algebra
      {"[matmul]", "inner dimensions differ", [] { matmul(f32({2, 3}), f32({4, 5})); }},
      {"[matmul]", "batch axes do not broadcast", [] { matmul(f32({2, 3, 4}), f32({3, 4, 5})); }},
      {"[matmul]", "0-d operand", [] { matmul(f32({}), f32({3})); }},
      {"[linear]", "in-features differ", [] { linear(f32({2, 3}), f32({4, 5}), Tensor()); }},
      {"[linear]", "bias size", [] { linear(f32({2, 3}), f32({4, 3}), f32({5})); }},
      {"[linear]", "1-d weight", [] { linear(f32({2, 3}), f32({3}), Tensor()); }},
      // normalisation, activation helpers
      {"[softmax]", "axis out of range", [] { softmax(f32({2, 3}), 2); }},
      {"[log_softmax]", "axis out of range", [] { log_softmax(f32({2, 3}), -3); }},
      {"[layer_norm]", "weight size", [] { layer_norm(f32({2, 3}), f32({4}), Tensor()); }},
      {"[layer_norm]", "bias size", [] { layer_norm(f32({2, 3}), f32({3}), f32({3, 1})); }},
      {"[dropout]", "p > 1", [] { dropout(f32({2}), 1.5, true); }},
      {"[embedding]", "1-d weight", [] { embedding(f32({5}), i64({0}, {1})); }},
      {"[embedding]", "float ids", [] { embedding(f32({5, 2}), f32({1})); }},
      {"[embedding]", "id out of range", [] { embedding(f32({5, 2}), i64({1, 5}, {2})); }},
      {"[embedding]", "negative id", [] { embedding(f32({5, 2}), i64({-1}, {1})); }},
      {"[attention]", "key width differs from query", [] {
         scaled_dot_product_attention(f32({1, 2, 3, 4}), f32({1, 2, 5, 3}), f32({1, 2, 5, 3}));
       }},
      {"[attention]", "3-d inputs", [] { scaled_dot_product_attention(f32({2, 3, 4}), f32({2, 3, 4}), f32({2, 3, 4})); }},
      {"[attention]", "mask does not broadcast", [] {
         scaled_dot_product_attention(f32({1, 2, 3, 4}), f32({1, 2, 5, 4}), f32({1, 2, 5, 4}), f32({1, 1, 1, 4}));
       }},
      // convolution and pooling
      {"[conv2d]", "input channels differ", [] { conv2d(f32({1, 3, 5, 5}), f32({2, 2, 3, 3}), Tensor()); }},
      {"[conv2d]", "3-d input", [] { conv2d(f32({3, 5, 5}), f32({2, 3, 3, 3}), Tensor()); }},
      {"[conv2d]", "kernel larger than the input", [] { conv2d(f32({1, 1, 2, 2}), f32({1, 1, 3, 3}), Tensor()); }},
      {"[conv2d]", "kernel larger than the input, stride 3", [] {
         conv2d(f32({1, 1, 2, 2}), f32({1, 1, 4, 4}), Tensor(), stride(3));
       }},
      {"[conv2d]", "bias size", [] { conv2d(f32({1, 3, 5, 5}), f32({2, 3, 3, 3}), f32({3})); }},
      {"[conv2d]", "channels not divisible by groups", [] {
         Conv2dOptions o;
         o.groups = 2;
         conv2d(f32({1, 3, 5, 5}), f32({2, 1, 3, 3}), Tensor(), o);
       }},
      {"[conv_transpose2d]", "input channels differ", [] {
         conv_transpose2d(f32({1, 3, 5, 5}), f32({2, 2, 3, 3}), Tensor());
       }},
      {"[conv_transpose2d]", "output padding not below stride or dilation", [] {
         Conv2dOptions o = stride(2);
         o.out_pad_h = 2;
         conv_transpose2d(f32({1, 2, 5, 5}), f32({2, 2, 3, 3}), Tensor(), o);
       }},
      {"[conv_transpose2d]", "padding leaves no output", [] {
         Conv2dOptions o;
         o.pad_h = o.pad_w = 3;
         conv_transpose2d(f32({1, 2, 1, 1}), f32({2, 2, 3, 3}), Tensor(), o);
       }},
      {"[max_pool2d]", "3-d input", [] { max_pool2d(f32({1, 4, 4}), 2, 2, 2, 2); }},
      {"[max_pool2d]", "kernel larger than the input", [] { max_pool2d(f32({1, 1, 2, 2}), 3, 3, 3, 3); }},
      {"[max_pool2d]", "padding over half the kernel", [] { max_pool2d(f32({1, 1, 4, 4}), 2, 2, 1, 1, 2, 2); }},
      {"[avg_pool2d]", "zero stride", [] { avg_pool2d(f32({1, 1, 4, 4}), 2, 2, 0, 2); }},
      {"[avg_pool2d]", "kernel larger than the input", [] { avg_pool2d(f32({1, 1, 2, 5}), 3, 3, 1, 1); }},
      // losses
      {"[cross_entropy]", "target shape", [] { cross_entropy(f32({4, 3}), i64({0, 1, 2}, {3})); }},
      {"[cross_entropy]", "target out of range", [] { cross_entropy(f32({2, 3}), i64({0, 3}, {2})); }},
      {"[cross_entropy]", "float target", [] { cross_entropy(f32({2, 3}), f32({2})); }},
      {"[cross_entropy]", "1-d logits", [] { cross_entropy(f32({3}), i64({0}, {})); }},
      {"[cross_entropy]", "label smoothing > 1", [] { cross_entropy(f32({2, 3}), i64({0, 1}, {2}), -100, 1.5); }},
      {"[mse_loss]", "shapes differ", [] { mse_loss(f32({2, 3}), f32({3, 2})); }},
      {"[l1_loss]", "shapes differ", [] { l1_loss(f32({2}), f32({3})); }},
      // gradient checking itself
      {"[gradcheck]", "float32 input", [] {
         autograd::gradcheck([](const autograd::TensorList& in) { return exp(in[0]); },
                             {Tensor::ones({2}, DType::F32).set_requires_grad()});
       }},
  };
}

}  // namespace

TEST_CASE("ops: bad inputs throw memel::Error naming the op") {
  int n = 0;
  for (const BadCall& b : bad_calls()) {
    INFO(b.tag, " ", b.what);
    CHECK_THROWS_WITH_AS(b.call(), doctest::Contains(b.tag), Error);
    ++n;
  }
  MESSAGE(n, " bad calls checked");
}

TEST_CASE("ops: a failed call leaves no partial state behind") {
  // After a throw the inputs are unchanged and a correct call still works.
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad();
  CHECK_THROWS_AS(matmul(x, x), Error);
  Tensor y = sum(matmul(x, transpose(x, 0, 1)));
  backward(y);
  CHECK(x.grad().defined());
  CHECK(x.to_vector() == std::vector<double>{1, 2, 3, 4, 5, 6});
}
