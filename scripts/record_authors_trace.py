#!/usr/bin/python3
"""Records tests/memel/authors_trace.safetensors: a trace of the authors' memel layer
(EmeL.py of github.com/dominatorX/MEmeL-code, the code released with the KDD 2024 paper),
which tests/memel/test_memel_authors_trace.cpp replays through memel's "authors" preset.

The class below is OUR reimplementation of that layer, written from reading its source
(nothing copied); it keeps every choice the released code makes:
  - statistics over the batch axis only (every element of a sample is a neuron), computed
    in float32 whatever the input dtype: the batch mean and biased variance are merged into
    the running mean and unbiased variance;
  - a batch counter c that is incremented BEFORE the merge, so batch k (1-based, k >= 2)
    weighs the history as min(k, h_upper) batches although it holds k - 1 of them; the
    first batch just sets mean and unbiased variance;
  - nothing is inhibited until the counter exceeds h_upper = 10 (warm-up);
  - the score is computed after the merge, against the merged statistics:
      phi = (h - mean)^2 / (var + mean_over_all_neurons(var) / 100);
  - per sample, every element whose phi equals the sample's maximum is selected (ties: all);
  - a selected element becomes -ratio * h + stopgrad(mean + ratio * h) (ratio = 1: reverse
    deactivation; forward value the merged mean, gradient -g);
  - eval mode is the identity.

Run with Debian's /usr/bin/python3 and python3-torch:
    /usr/bin/python3 scripts/record_authors_trace.py tests/memel/authors_trace.safetensors
"""
import json
import sys

import os

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from st_io import write_safetensors  # noqa: E402  (the project's one safetensors writer)


class AuthorsLayer:
    """The released layer's behaviour (see the module docstring)."""

    def __init__(self, h_upper=10, ratio=1.0):
        self.h_upper = h_upper
        self.ratio = ratio
        self.count = 0
        self.mean = None
        self.var = None
        self.training = True
        self.last_scores = None
        self.last_selected = None

    def __call__(self, h):
        self.last_scores = None
        self.last_selected = None
        if not self.training:
            return h
        z = h.detach().to(torch.float32)
        bm = z.mean(dim=0, keepdim=True)
        bv = z.var(dim=0, keepdim=True, unbiased=False)
        b = z.shape[0]
        self.count += 1  # before the merge: the authors' counter
        if self.var is None:
            self.mean, self.var = bm, bv * b / (b - 1.0)
            return h
        c = float(min(self.count, self.h_upper))  # history weight in batches
        d2 = (bm - self.mean) ** 2
        self.var = (self.var * (c - 1.0 / b) + bv + d2 / (1.0 + 1.0 / c)) / (c + 1.0 - 1.0 / b)
        self.mean = (self.mean * c + bm) / (c + 1.0)
        if self.count <= self.h_upper:
            return h
        phi = (z - self.mean) ** 2 / (self.var + self.var.mean() / 100.0)
        flat = phi.reshape(b, -1)
        top = flat.max(dim=1, keepdim=True).values
        sel = (flat == top).reshape(h.shape)
        self.last_scores, self.last_selected = phi, sel
        s = sel.to(h.dtype)
        keep = self.mean + self.ratio * h.detach()
        return (1 - s * (1 + self.ratio)) * h + keep * s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/memel/authors_trace.safetensors"
    torch.manual_seed(20240825)
    B, shape = 4, (3, 5)  # 15 neurons per sample
    layer = AuthorsLayer()
    # Per-neuron offsets and scales, and a drift, so that forgetting changes the statistics.
    offset = torch.randn(shape) * 2.0
    scale = torch.rand(shape) * 1.5 + 0.25
    # 13 training batches (10 of warm-up, 3 inhibited), one eval batch, 2 more training batches.
    plan = ["train"] * 13 + ["eval"] + ["train"] * 2
    tensors = {}
    min_gap = float("inf")
    for i, mode in enumerate(plan):
        x = (torch.randn((B,) + shape) * scale + offset + 0.15 * i).to(torch.float32)
        # Neuron (0, 1) duplicates neuron (0, 0) in every batch: equal statistics, equal
        # scores, so a selected one is always a tie; sample 1 makes it extreme from step 11 on.
        x[:, 0, 1] = x[:, 0, 0]
        if i >= 10:
            x[1, 0, 0] = x[1, 0, 1] = offset[0, 0] + 6.0 * scale[0, 0]
        layer.training = mode == "train"
        x.requires_grad_(True)
        y = layer(x)
        g = torch.randn_like(y)
        y.backward(g)
        p = "step%02d." % i
        tensors[p + "x"] = x.detach()
        tensors[p + "grad_out"] = g
        tensors[p + "y"] = y.detach()
        tensors[p + "grad_in"] = x.grad.detach()
        tensors[p + "mean"] = layer.mean.reshape(shape)
        tensors[p + "var"] = layer.var.reshape(shape)
        sel = layer.last_selected
        tensors[p + "selected"] = (sel if sel is not None else torch.zeros_like(x, dtype=torch.bool)).to(torch.float32)
        if layer.last_scores is not None:
            tensors[p + "scores"] = layer.last_scores
            # Distinct (non-tied) scores must be far apart so that float32 rounding on the
            # other side cannot change the selection.
            for row in layer.last_scores.reshape(B, -1):
                v = sorted(set(row.tolist()), reverse=True)
                if len(v) > 1:
                    min_gap = min(min_gap, (v[0] - v[1]) / v[0])
    assert min_gap > 1e-3, "near-tie between distinct scores (%g); pick another seed" % min_gap
    meta = {
        "producer": "scripts/record_authors_trace.py",
        "reference": "reimplementation of EmeL.py (github.com/dominatorX/MEmeL-code, commit de9e23a), h_upper=10, ratio=1, t=1",
        "torch": torch.__version__,
        "steps": json.dumps(plan),
        "batch": str(B),
        "min_score_gap": "%.3g" % min_gap,
    }
    write_safetensors(out, tensors, meta)
    n_sel = {k: int(v.sum()) for k, v in tensors.items() if k.endswith("selected")}
    print("wrote", out, "with", len(tensors), "tensors; selections per step:", json.dumps(n_sel))


if __name__ == "__main__":
    main()
