// safetensors interop with PyTorch through tests/python/safetensors_interop.py (its own
// reader and writer, no safetensors package). Skips when Debian's python3 has no torch
// (fails instead under MEMEL_TORCH_REFERENCE=required).
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>

#include "support.h"
#include "tensor/tensor_io.h"

using namespace memel;

namespace {

// The same formulas as expected() in safetensors_interop.py.
std::map<std::string, Tensor> interop_tensors() {
  std::vector<float> w;
  for (int i = 0; i < 12; ++i) w.push_back(static_cast<float>((i * 37 % 101 - 50) / 8.0));
  std::vector<double> d;
  for (int i = 0; i < 6; ++i) d.push_back(i / 3.0);
  return {{"w.f32", Tensor::from_vector(w, {3, 4})},
          {"w.f64", Tensor::from_vector(d, {2, 3})},
          {"ids.i32", Tensor::from_vector(std::vector<int32_t>{-7, 0, 2147483647, -2147483647 - 1}, {4})},
          {"ids.i64", Tensor::from_vector(std::vector<int64_t>{(int64_t(1) << 53) + 1, -1, 0}, {3})},
          {"scalar", Tensor::scalar(3.5)},
          {"empty", Tensor::zeros({0, 2})}};
}

}  // namespace

TEST_CASE("safetensors: PyTorch reads what memel writes and memel reads what PyTorch writes") {
  std::string dir = MEMEL_BINARY_DIR;
  std::string a = dir + "/interop_memel.safetensors", b = dir + "/interop_torch.safetensors";
  std::remove(b.c_str());
  auto tensors = interop_tensors();
  save_safetensors(a, tensors, {{"producer", "memel"}, {"note", "\xc3\xbc" "n\xc3\xaf" "code ok"}});
  std::string cmd = reference_python() + " " + std::string(MEMEL_SOURCE_DIR) + "/tests/python/safetensors_interop.py roundtrip " +
                    a + " " + b + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), p)) out += buf;
  int rc = pclose(p);
  // One Python start (importing torch is slow): a missing torch or python3 means skip.
  if (rc != 0 && (out.find("No module named 'torch'") != std::string::npos || WEXITSTATUS(rc) == 127)) {
    reference_unavailable(reference_python() + " cannot import torch");
    return;
  }
  INFO("python said: ", out);
  REQUIRE(rc == 0);

  TensorFile f = load_safetensors(b);
  CHECK(f.metadata.at("producer") == "python");
  CHECK(f.tensors.size() == tensors.size() + 5);
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const Tensor& u = f.tensors.at(name);
    CHECK(u.dtype() == t.dtype());
    CHECK(u.shape() == t.shape());
    CHECK(u.to_vector() == t.to_vector());
  }
  // The values are exact in F16 and BF16.
  std::vector<double> w = tensors.at("w.f32").to_vector();
  CHECK(f.tensors.at("h.f16").dtype() == DType::F32);
  CHECK(f.tensors.at("h.f16").shape() == Shape{3, 4});
  CHECK(f.tensors.at("h.f16").to_vector() == w);
  CHECK(f.tensors.at("h.bf16").to_vector() == w);
  CHECK(f.tensors.at("m.u8").to_vector() == std::vector<double>{0, 40, 80, 120, 160, 200});
  CHECK(f.tensors.at("m.i8").to_vector() == std::vector<double>{-128, 5, 127});
  CHECK(f.tensors.at("m.bool").to_vector() == std::vector<double>{1, 0, 0, 1});
  std::remove(a.c_str());
  std::remove(b.c_str());
}
