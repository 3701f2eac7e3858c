// The memel layer on a device that is not the CPU (`sim`, where the pass, merge, selection and
// inhibition run composed from core kernels, tensor/fallback.cpp): the same numbers as the CPU.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "memel/layer.h"

using namespace memel;

TEST_CASE("memel layer on sim: outputs, gradients, scores, selection and statistics equal the CPU's bit for bit") {
  for (const char* cfg : {R"({"preset": "paper", "warmup": 1})", R"({"mode": "rd", "select": "top_k", "k": 2, "warmup": 0,
                           "neurons": "channel", "score_after_update": true})"}) {
    CAPTURE(cfg);
    const MemelOptions o = MemelOptions::from_json(nlohmann::json::parse(cfg));
    MemelLayer on_cpu(o), on_sim(o);
    on_sim.to(Device::parse("sim"));
    Generator g(11);
    for (int step = 0; step < 4; ++step) {
      Tensor x = add(mul(Tensor::randn({6, 5, 4}, DType::F32, &g), 2.0), 1.0);
      Tensor xc = x.detach().set_requires_grad(true), xs = x.to(Device::parse("sim")).set_requires_grad(true);
      Tensor yc = on_cpu(xc), ys = on_sim(xs);
      CHECK(ys.device() == Device::parse("sim"));
      CHECK(ys.to_vector() == yc.to_vector());
      CHECK(on_sim.last_selected() == on_cpu.last_selected());
      CHECK(on_sim.last_scores().device() == Device::parse("sim"));
      CHECK(on_sim.last_scores().to_vector() == on_cpu.last_scores().to_vector());
      // Backward through the reverse deactivation.
      Tensor w = Tensor::randn({6, 5, 4}, DType::F32, &g);
      backward(sum(mul(yc, w)));
      backward(sum(mul(ys, w.to(Device::parse("sim")))));
      CHECK(xs.grad().to_vector() == xc.grad().to_vector());
    }
    CHECK(!on_cpu.last_selected().empty());
    const StateDict a = on_cpu.state_dict(), b = on_sim.state_dict();
    REQUIRE(a.size() == b.size());
    for (const auto& [k, t] : a) {
      CAPTURE(k);
      CHECK(b.at(k).device() == Device::parse("sim"));
      CHECK(b.at(k).to_vector() == t.to_vector());
    }
    // score() on sim, and the statistics moved back to the CPU.
    Tensor x = Tensor::randn({3, 5, 4}, DType::F32, &g);
    CHECK(on_sim.score(x.to(Device::parse("sim"))).to_vector() == on_cpu.score(x).to_vector());
  }
}
