#!/usr/bin/python3
"""Reference side of tests/models/test_convgru_parity.cpp.

An independent ConvGRU and encoder-forecaster written from torch.nn.Conv2d and
torch.nn.ConvTranspose2d, in float64, following the HKO-7 benchmark code: gates
(reset, update, new) from one i2h and one h2h convolution with 3*C channels,
  r = sigmoid(i_r + s_r), z = sigmoid(i_z + s_z), h' = act(i_h + r * s_h),
  h = (1 - z) * h' + z * h_prev,
a zero initial state, the top forecaster cell without input, and leaky ReLU (0.2)
between the convolutions.

For each case NAME in DIR the C++ test wrote
  NAME.in.safetensors   "param.<name>" (our parameter names), "x" the input sequence
                        (B, T, C, H, W), "g" the output weights; "__metadata__"
                        {"config": JSON} describing the case
This script computes the output y and the gradients of sum(y * g) with respect to the
input and every parameter, and writes NAME.torch.safetensors ("y", "grad.x",
"grad.<name>", float64). Usage: convgru_parity.py DIR NAME [NAME ...]
"""
import json
import struct
import sys

import torch
import torch.nn.functional as F

from st_io import read_safetensors_meta as read_safetensors, write_safetensors

def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Cell(torch.nn.Module):
    def __init__(self, cin, c, spec, act, slope):
        super().__init__()
        self.c, self.act, self.slope = c, act, slope
        self.i2h = None
        if cin > 0:
            self.i2h = torch.nn.Conv2d(cin, 3 * c, pair(spec["i2h_kernel"]), stride=pair(spec["i2h_stride"]),
                                       padding=pair(spec["i2h_padding"]), dilation=pair(spec["i2h_dilation"]))
        k, d = pair(spec["h2h_kernel"]), pair(spec["h2h_dilation"])
        self.h2h = torch.nn.Conv2d(c, 3 * c, k, padding=(d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2), dilation=d)

    def activation(self, x):
        return torch.tanh(x) if self.act == "tanh" else F.leaky_relu(x, self.slope)

    def step(self, x, h):
        s_r, s_z, s_h = torch.chunk(self.h2h(h), 3, dim=1)
        if x is None:
            r, z = torch.sigmoid(s_r), torch.sigmoid(s_z)
            cand = self.activation(r * s_h)
        else:
            i_r, i_z, i_h = torch.chunk(self.i2h(x), 3, dim=1)
            r, z = torch.sigmoid(i_r + s_r), torch.sigmoid(i_z + s_z)
            cand = self.activation(i_h + r * s_h)
        return (1 - z) * cand + z * h

    def run(self, xs, h, steps):
        """xs: list of (B, C, H, W) inputs or None; h: state or None (zeros)."""
        out = []
        for t in range(steps):
            x = xs[t] if xs is not None else None
            if h is None:
                y = self.i2h(x)
                h = torch.zeros(y.shape[0], self.c, y.shape[2], y.shape[3], dtype=y.dtype)
            h = self.step(x, h)
            out.append(h)
        return out


def conv(cin, spec):
    return torch.nn.Conv2d(cin, spec["channels"], pair(spec["kernel"]), stride=pair(spec["stride"]),
                           padding=pair(spec["padding"]))


def deconv(cin, spec):
    return torch.nn.ConvTranspose2d(cin, spec["channels"], pair(spec["kernel"]), stride=pair(spec["stride"]),
                                    padding=pair(spec["padding"]), output_padding=pair(spec.get("output_padding", 0)))


class EncoderForecaster(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        L = len(cfg["rnn"])
        act, slope = cfg["rnn_activation"], cfg["leaky_slope"]
        self.slope = slope
        enc = torch.nn.Module()
        ch = cfg["frame_channels"]
        for k in range(1, L + 1):
            c = cfg["first_conv"] if k == 1 else cfg["downsample"][k - 2]
            setattr(enc, "stage%d" % k, torch.nn.Sequential(conv(ch, c), torch.nn.LeakyReLU(slope)))
            setattr(enc, "rnn%d" % k, Cell(c["channels"], cfg["rnn"][k - 1]["channels"], cfg["rnn"][k - 1], act, slope))
            ch = cfg["rnn"][k - 1]["channels"]
        fc = torch.nn.Module()
        for k in range(L, 0, -1):
            cin = 0 if k == L else cfg["upsample"][L - 1 - k]["channels"]
            hid = cfg["rnn"][k - 1]["channels"]
            setattr(fc, "rnn%d" % k, Cell(cin, hid, cfg["rnn"][k - 1], act, slope))
            if k > 1:
                stage = torch.nn.Sequential(deconv(hid, cfg["upsample"][L - k]), torch.nn.LeakyReLU(slope))
            else:
                last, fin = cfg["last_deconv"], cfg["final_conv"]
                stage = torch.nn.Sequential(
                    deconv(hid, last), torch.nn.LeakyReLU(slope), conv(last["channels"], fin),
                    torch.nn.LeakyReLU(slope),
                    torch.nn.Conv2d(fin["channels"], cfg["frame_channels"], 1))
            setattr(fc, "stage%d" % k, stage)
        self.encoder, self.forecaster = enc, fc
        self.L = L

    def forward(self, x):  # (B, T, C, H, W)
        T_in, T_out = x.shape[1], self.cfg["out_frames"]
        seq = [x[:, t] for t in range(T_in)]
        states = []
        for k in range(1, self.L + 1):
            seq = [getattr(self.encoder, "stage%d" % k)(f) for f in seq]
            seq = getattr(self.encoder, "rnn%d" % k).run(seq, None, T_in)
            states.append(seq[-1])
        seq = None
        for k in range(self.L, 0, -1):
            seq = getattr(self.forecaster, "rnn%d" % k).run(seq, states[k - 1], T_out)
            seq = [getattr(self.forecaster, "stage%d" % k)(f) for f in seq]
        return torch.stack(seq, dim=1)


class CellCase(torch.nn.Module):
    """A single cell over a sequence from a zero state (or from h0 when given)."""

    def __init__(self, cfg):
        super().__init__()
        self.cell = Cell(cfg["input_channels"], cfg["hidden_channels"], cfg, cfg["activation"], cfg["leaky_slope"])

    def forward(self, x, h0=None):
        return torch.stack(self.cell.run([x[:, t] for t in range(x.shape[1])], h0, x.shape[1]), dim=1)


def run_case(d, name):
    t, meta = read_safetensors("%s/%s.in.safetensors" % (d, name))
    cfg = json.loads(meta["config"])
    model = CellCase(cfg) if cfg["kind"] == "cell" else EncoderForecaster(cfg)
    model = model.double()
    ours = {k[len("param."):]: v for k, v in t.items() if k.startswith("param.")}
    prefix = "cell." if cfg["kind"] == "cell" else ""
    theirs = dict(model.named_parameters())
    missing = set(theirs) - set(prefix + k for k in ours)
    extra = set(prefix + k for k in ours) - set(theirs)
    if missing or extra:
        raise SystemExit("parameter names differ: missing %s, unexpected %s" % (sorted(missing), sorted(extra)))
    with torch.no_grad():
        for k, v in ours.items():
            theirs[prefix + k].copy_(v.double())
    x = t["x"].double().requires_grad_(True)
    h0 = t["h0"].double().requires_grad_(True) if "h0" in t else None
    y = model(x, h0) if cfg["kind"] == "cell" else model(x)
    (y * t["g"].double()).sum().backward()
    out = {"y": y, "grad.x": x.grad}
    if h0 is not None:
        out["grad.h0"] = h0.grad
    for k in ours:
        out["grad." + k] = theirs[prefix + k].grad
    write_safetensors("%s/%s.torch.safetensors" % (d, name), out)


def main():
    d = sys.argv[1]
    for name in sys.argv[2:]:
        run_case(d, name)


if __name__ == "__main__":
    main()
