#pragma once
// Devices: where a tensor's memory lives and which backend runs its kernels. The
// registry in tensor/backend.h maps each device to its backend.
//   cpu      host memory, the CPU backend (always built)
//   cuda:N   GPU N, the CUDA backend (built when CMake finds nvcc; MEMEL_WITH_CUDA)
//   sim      a simulated accelerator (always built): memory the ops cannot address from
//            the host and only the backend's core kernels, so that every fused kernel runs
//            through its composed fallback (tests prove device independence on it)
#include <cstdint>
#include <string>

namespace memel {

enum class DeviceType : uint8_t { CPU, CUDA, Sim };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;  // "cpu", "cuda:0", "sim"
  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  static Device sim() { return {DeviceType::Sim, 0}; }
  static Device parse(const std::string& s);  // "cpu", "cuda", "cuda:1", "sim"
};

}  // namespace memel
