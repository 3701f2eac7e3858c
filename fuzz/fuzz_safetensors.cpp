// Fuzz target: the safetensors reader (core/safetensors.h, tensor/tensor_io.h) and what a
// resumed run does with a checkpoint file: load a model state dict and an optimizer state.
#include "fuzz_common.h"

#include "autograd/ops.h"
#include "core/safetensors.h"
#include "models/small.h"
#include "optim/adamw.h"
#include "optim/optimizer.h"
#include "tensor/tensor_io.h"

using namespace memel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // In memory: header validation, then every tensor decoded.
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(parse_safetensors(data, size, "<fuzz>"));
  bool loaded = false;
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS((load_safetensors_from_memory(data, size, "<fuzz>"), loaded = true));

  // Through a file: the path readers (header, then pread of each tensor).
  const std::string path = fuzz::scratch_dir() + "/input.safetensors";
  fuzz::write_bytes(path, std::string_view(reinterpret_cast<const char*>(data), size));
  TensorFile file;
  bool from_file = false;
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS((file = load_safetensors(path), from_file = true));
  // Both readers take the same decisions.
  if (loaded != from_file) __builtin_trap();
  if (!from_file) return 0;

  // A checkpoint's model.safetensors: strict and lenient state-dict loading.
  MLPConfig c;
  c.in_features = 3;
  c.hidden = {2};
  c.num_classes = 2;
  c.dropout = 0;
  auto model = std::make_shared<MLP>(c);
  StateDict sd;
  for (auto& [k, t] : file.tensors) sd[k] = t;
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(model->load_state_dict(sd, /*strict=*/true));
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(model->load_state_dict(sd, /*strict=*/false));
  // A checkpoint's optimizer.safetensors.
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS({
    OptimizerState st = load_optimizer_state(path);
    AdamW opt(param_groups_with_decay(*model, 0.01), AdamWOptions{});
    opt.load_state_dict(st);
    // ...and the first step after the resume uses the loaded buffers.
    Tensor x = Tensor::ones({1, 3});
    backward(sum((*model)(x)));
    opt.step();
  });
  return 0;
}
