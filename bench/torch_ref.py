#!/usr/bin/python3
"""PyTorch references for the training workloads W1-W4 of memel-bench.

    PYTHON bench/torch_ref.py --workload bert-mini|swin-t|swin-mini|convgru --threads T
        [--device cpu|cuda] [--steps N] [--warmup W] [--seed S] [--blas-threads N]

Same models and shapes as `memel-bench --workload NAME` (../shared/design/benchmarks.md),
the same timed step (zero_grad, forward, loss, backward, optimizer step; median of the
timed steps after warm-up), and the same JSON line:
  {"workload", "device", "threads", "memel": "none", "step_ms", "items_per_s", "gflops",
   "peak_mem_mb", "gflop_per_step", "params", "steps", "warmup", "seed", "loss", "torch",
   "blas_threads", "kernels", "python"}
gflops is achieved GFLOP/s from the same analytic count as memel-bench (3x the forward
FLOPs of the matrix products and convolutions; see tools/memel-bench.cpp). peak_mem_mb is
the peak resident set size of the process (ru_maxrss) on the CPU, which includes the
Python interpreter and the torch libraries; on a GPU it is torch.cuda.max_memory_allocated.

Threads: PyTorch runs as its users run it: torch.set_num_threads(T), nothing else. (Debian's
PyTorch calls the pthread build of OpenBLAS for matrix products, which then uses one thread
per core whatever torch is told; that is what its users get. Until 2026-12-03 this script
set OPENBLAS_NUM_THREADS=T, which slowed that PyTorch down: --blas-threads N still does,
for a study, never in bench/compare.sh.) "kernels" names the BLAS, oneDNN and the CPU
capability torch reports (torch.__config__.show()).

Runs with any interpreter that has torch (and torchvision, whose Swin the Swin workloads
use): Debian's /usr/bin/python3 (PyTorch 1.13, torchvision 0.14) and a development venv
with the current PyTorch from PyPI (scripts/dev-torch-venv.sh) are the two references of
bench/compare.sh.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

WORKLOADS = ("bert-mini", "swin-t", "swin-mini", "convgru")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", required=True, choices=WORKLOADS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--steps", type=int, default=5, help="timed steps; the median is reported")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blas-threads", default=None,
                   help="set OPENBLAS_NUM_THREADS (a study only; default: leave OpenBLAS alone, as users do)")
    p.add_argument("--memel", default="none", choices=("none",), help="accepted for symmetry; always none")
    a = p.parse_args()
    if a.threads < 1 or a.steps < 1 or a.warmup < 0:
        p.error("--threads and --steps must be >= 1, --warmup >= 0")
    return a


ARGS = parse_args()
if ARGS.blas_threads is not None:
    os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.blas_threads)

import torch  # noqa: E402  (after the environment is set)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# --- analytic FLOPs (the same formulas as tools/memel-bench.cpp) ----------------------

def bert_forward_flops(B, T, H=256, L=4, FF=1024, classes=2):
    per_token_layer = 8 * H * H + 4 * T * H + 4 * H * FF
    return B * (T * L * per_token_layer + 2 * H * H + 2 * H * classes)


def swin_forward_flops(B, img, patch, in_chans, dim, depths, window, classes, mlp_ratio=4.0):
    # Stage resolutions and clamped windows as the authors' Swin (memel's model).
    res, s = [], img // patch
    for _ in depths:
        res.append(s)
        s = (s + 1) // 2
    f = 2.0 * res[0] ** 2 * dim * in_chans * patch * patch
    C = float(dim)
    for i, d in enumerate(depths):
        r = res[i]
        w = r if r <= window else window
        padded = (r + w - 1) // w * w
        N, Np, M = r * r, padded * padded, w * w
        f += d * (6 * Np * C * C + 4 * Np * M * C + 2 * Np * C * C + 4 * mlp_ratio * N * C * C)
        if i + 1 < len(depths):
            r2 = (r + 1) // 2
            f += 2 * r2 * r2 * (4 * C) * (2 * C)
            C *= 2
    f += 2 * C * classes
    return B * f


def conv_out(n, k, s, p):
    return (n + 2 * p - (k - 1) - 1) // s + 1


def deconv_out(n, k, s, p):
    return (n - 1) * s - 2 * p + k


# The HKO-7 encoder-forecaster at 240x240 (memel's preset "convgru-w4").
HKO7 = dict(
    frame=240, channels=1, t_in=5, t_out=20,
    first_conv=(8, 7, 5, 1),                   # (out channels, kernel, stride, padding)
    downsample=[(192, 5, 3, 1), (192, 3, 2, 1)],
    rnn=[(64, 5), (192, 5), (192, 3)],         # (hidden channels, h2h kernel); i2h 3x3 pad 1
    upsample=[(192, 4, 2, 1), (64, 5, 3, 1)],  # top level first
    last_deconv=(8, 7, 5, 1),
    final_conv=(8, 3, 1, 1),
    slope=0.2,
)


def convgru_forward_flops(B, c=HKO7):
    def conv(cin, cout, k, out):
        return 2.0 * cout * cin * k * k * out * out

    def deconv(cin, cout, k, inp):
        return 2.0 * cin * cout * k * k * inp * inp

    L, Ti, To = len(c["rnn"]), c["t_in"], c["t_out"]
    f, s, ch, states = 0.0, c["frame"], c["channels"], []
    for k in range(L):
        oc, kk, st, pd = c["first_conv"] if k == 0 else c["downsample"][k - 1]
        s = conv_out(s, kk, st, pd)
        f += Ti * conv(ch, oc, kk, s)
        hc, hk = c["rnn"][k]
        f += Ti * conv(oc, 3 * hc, 3, s) + Ti * conv(hc, 3 * hc, hk, s)
        states.append(s)
        ch = hc
    for k in range(L, 0, -1):
        hc, hk = c["rnn"][k - 1]
        s = states[k - 1]
        if k < L:
            f += To * conv(c["upsample"][L - 1 - k][0], 3 * hc, 3, s)
        f += To * conv(hc, 3 * hc, hk, s)
        if k > 1:
            oc, kk, _, _ = c["upsample"][L - k]
            f += To * deconv(hc, oc, kk, s)
        else:
            oc, kk, st, pd = c["last_deconv"]
            f += To * deconv(hc, oc, kk, s)
            big = deconv_out(s, kk, st, pd)
            fc, fk, fs, fp = c["final_conv"]
            fin = conv_out(big, fk, fs, fp)
            f += To * conv(oc, fc, fk, fin) + To * conv(fc, c["channels"], 1, fin)
    return B * f


# --- W1: BERT-mini for sequence classification -----------------------------------------

class BertMini(nn.Module):
    """Word + position + segment embeddings, LayerNorm, dropout; a post-LN GELU
    nn.TransformerEncoder; the [CLS] token through a tanh pooler, dropout and a linear
    classifier (Hugging Face's BertForSequenceClassification layout)."""

    def __init__(self, vocab=30522, hidden=256, layers=4, heads=4, ffn=1024, positions=512,
                 segments=2, classes=2, dropout=0.1):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden, padding_idx=0)
        self.position = nn.Embedding(positions, hidden)
        self.segment = nn.Embedding(segments, hidden)
        self.embed_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(hidden, heads, ffn, dropout, activation="gelu",
                                           layer_norm_eps=1e-12, batch_first=True, norm_first=False)
        try:
            self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        except TypeError:  # older torch without the flag
            self.encoder = nn.TransformerEncoder(block, layers)
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, classes)
        for m in self.modules():  # BERT's init: N(0, 0.02) weights, zero biases
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, ids, segments):  # (B, T), (B, T) -> (B, classes)
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(pos)[None] + self.segment(segments)  # (B, T, H)
        x = self.encoder(self.drop(self.embed_norm(x)))
        cls = torch.tanh(self.pooler(x[:, 0]))  # (B, H)
        return self.classifier(self.drop(cls))


# --- W4: ConvGRU encoder-forecaster ------------------------------------------------------

class GRUCell(nn.Module):
    """ConvGRU with HKO-7's gate order (reset, update, new) and leaky-ReLU candidate:
    r = s(i_r + h_r), z = s(i_z + h_z), c = act(i_n + r * h_n), h' = (1 - z) c + z h."""

    def __init__(self, cin, hidden, h2h_kernel, slope):
        super().__init__()
        self.hidden, self.slope = hidden, slope
        self.i2h = nn.Conv2d(cin, 3 * hidden, 3, 1, 1) if cin else None
        self.h2h = nn.Conv2d(hidden, 3 * hidden, h2h_kernel, 1, h2h_kernel // 2)

    def run(self, h, steps, x=None):
        """x (B, T, Cin, H, W) or None (no input, `steps` steps); h (B, C, H, W) or None
        (zeros) -> states (B, T, C, H, W)."""
        gates = None
        if x is not None:
            B, T = x.shape[:2]
            g = self.i2h(x.flatten(0, 1))  # all frames at once: (B*T, 3C, H, W)
            gates = g.view(B, T, *g.shape[1:])
            steps = T
            if h is None:
                h = x.new_zeros(B, self.hidden, *g.shape[2:])
        out = []
        for t in range(steps):
            hr, hz, hn = self.h2h(h).chunk(3, 1)
            if gates is None:
                r, z = torch.sigmoid(hr), torch.sigmoid(hz)
                cand = F.leaky_relu(r * hn, self.slope)
            else:
                xr, xz, xn = gates[:, t].chunk(3, 1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                cand = F.leaky_relu(xn + r * hn, self.slope)
            h = (1 - z) * cand + z * h
            out.append(h)
        return torch.stack(out, 1)


def per_frame(module, x):  # (B, T, C, H, W) through a per-image module
    y = module(x.flatten(0, 1))
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


class EncoderForecaster(nn.Module):
    def __init__(self, c=HKO7):
        super().__init__()
        self.c = c
        L, slope = len(c["rnn"]), c["slope"]
        act = lambda: nn.LeakyReLU(slope)  # noqa: E731
        self.enc_stage, self.enc_rnn = nn.ModuleList(), nn.ModuleList()
        ch = c["channels"]
        for k in range(L):
            oc, kk, st, pd = c["first_conv"] if k == 0 else c["downsample"][k - 1]
            self.enc_stage.append(nn.Sequential(nn.Conv2d(ch, oc, kk, st, pd), act()))
            hc, hk = c["rnn"][k]
            self.enc_rnn.append(GRUCell(oc, hc, hk, slope))
            ch = hc
        # Forecaster, indexed by level k - 1 like the encoder.
        self.fc_rnn, self.fc_stage = nn.ModuleList(), nn.ModuleList()
        for k in range(1, L + 1):
            hc, hk = c["rnn"][k - 1]
            cin = 0 if k == L else c["upsample"][L - 1 - k][0]
            self.fc_rnn.append(GRUCell(cin, hc, hk, slope))
            if k > 1:
                oc, kk, st, pd = c["upsample"][L - k]
                self.fc_stage.append(nn.Sequential(nn.ConvTranspose2d(hc, oc, kk, st, pd), act()))
            else:
                oc, kk, st, pd = c["last_deconv"]
                fc, fk, fs, fp = c["final_conv"]
                self.fc_stage.append(nn.Sequential(
                    nn.ConvTranspose2d(hc, oc, kk, st, pd), act(),
                    nn.Conv2d(oc, fc, fk, fs, fp), act(),
                    nn.Conv2d(fc, c["channels"], 1)))

    def forward(self, x):  # (B, T_in, C, H, W) -> (B, T_out, C, H, W)
        states, seq = [], x
        for stage, rnn in zip(self.enc_stage, self.enc_rnn):
            seq = rnn.run(None, 0, per_frame(stage, seq))
            states.append(seq[:, -1])
        L = len(states)
        seq = None
        for k in range(L, 0, -1):
            rnn = self.fc_rnn[k - 1]
            seq = rnn.run(states[k - 1], self.c["t_out"]) if k == L else rnn.run(states[k - 1], 0, seq)
            seq = per_frame(self.fc_stage[k - 1], seq)
        return seq


def rainfall_to_pixel(rate, a=58.53, b=1.56):
    dbz = 10 * math.log10(a) + 10 * b * math.log10(rate)
    return (dbz + 10) / 70


def balanced_mse_mae(pred, truth, thresholds=(0.5, 2, 5, 10, 30), weights=(1, 1, 2, 5, 10, 30), scale=5e-5):
    """HKO-7's training loss: per-pixel weights from the true rain rate; per (b, t) sums
    of w d^2 and w |d|, averaged over b and t; scaled."""
    w = torch.full_like(truth, float(weights[0]))
    for i, r in enumerate(thresholds):
        w = w + float(weights[i + 1] - weights[i]) * (truth >= rainfall_to_pixel(r)).to(truth.dtype)
    d = pred - truth
    dims = tuple(range(2, truth.dim()))
    mse = (w * d * d).sum(dims).mean()
    mae = (w * d.abs()).sum(dims).mean()
    return scale * (mse + mae)


# --- setup and timing ------------------------------------------------------------------

def decay_groups(model, wd):
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def setup(name, dev, gen):
    """-> (model, optimizer, loss function, items per step, forward FLOPs)"""
    if name == "bert-mini":
        B, T = 32, 128
        model = BertMini().to(dev)
        ids = torch.randint(1, 30522, (B, T), generator=gen).to(dev)
        seg = (torch.arange(T) >= T // 2).long().expand(B, T).contiguous().to(dev)
        labels = torch.randint(0, 2, (B,), generator=gen).to(dev)
        opt = torch.optim.AdamW(decay_groups(model, 0.01), lr=1e-4)
        return model, opt, lambda: F.cross_entropy(model(ids, seg), labels), B, bert_forward_flops(B, T)
    if name in ("swin-t", "swin-mini"):
        import torchvision
        from torchvision.models.swin_transformer import SwinTransformer
        if name == "swin-t":
            B, img, classes = 8, 224, 1000
            model = torchvision.models.swin_t(num_classes=1000)  # stochastic depth 0.2
            flops = swin_forward_flops(B, 224, 4, 3, 96, [2, 2, 6, 2], 7, 1000)
        else:
            B, img, classes = 64, 32, 10
            model = SwinTransformer(patch_size=[2, 2], embed_dim=48, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                                    window_size=[4, 4], stochastic_depth_prob=0.1, num_classes=10)
            flops = swin_forward_flops(B, 32, 2, 3, 48, [2, 2, 6, 2], 4, 10)
        model = model.to(dev)
        images = torch.randn(B, 3, img, img, generator=gen).to(dev)
        labels = torch.randint(0, classes, (B,), generator=gen).to(dev)
        opt = torch.optim.AdamW(decay_groups(model, 0.05), lr=1e-3)
        return model, opt, lambda: F.cross_entropy(model(images), labels), B, flops
    if name == "convgru":
        B, c = 2, HKO7
        model = EncoderForecaster(c).to(dev)
        x = torch.rand(B, c["t_in"], c["channels"], c["frame"], c["frame"], generator=gen).to(dev)
        truth = torch.rand(B, c["t_out"], c["channels"], c["frame"], c["frame"], generator=gen).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        return model, opt, lambda: balanced_mse_mae(model(x), truth), B, convgru_forward_flops(B)
    raise SystemExit(f"torch_ref.py: unknown workload {name}")


def kernels():
    """The BLAS, oneDNN version and CPU capability this torch reports."""
    show = torch.__config__.show()
    blas, dnnl, cap = "?", None, None
    for line in show.splitlines():
        line = line.strip()
        if "BLAS_INFO=" in line:
            blas = line.split("BLAS_INFO=")[1].split(",")[0]
        if line.startswith("- Intel(R) MKL-DNN") or line.startswith("- Intel(R) oneDNN") or "Math Kernel Library" in line:
            if "Math Kernel Library" in line:
                blas = "mkl (" + line.lstrip("- ").split(" for ")[0] + ")"
            else:
                dnnl = line.lstrip("- ").split(" (")[0]
        if line.startswith("- CPU capability usage:"):
            cap = line.split(":", 1)[1].strip()
    try:  # the BLAS library actually loaded (Debian's "generic" BLAS is an alternatives link)
        paths = {os.path.realpath(l.split()[-1]) for l in open("/proc/self/maps") if l.split()[-1].startswith("/")}
        libs = sorted(p for p in paths if "blas" in os.path.basename(p) or "mkl_core" in os.path.basename(p))
        if libs and blas in ("generic", "open", "?"):  # others (mkl) are linked into torch itself
            blas += " -> " + " + ".join("/".join(x.split("/")[-2:]) for x in libs)
    except OSError:
        pass
    parts = [f"{blas} BLAS"]
    if dnnl:
        parts.append(dnnl)
    if cap:
        parts.append(f"CPU capability {cap}")
    return ", ".join(parts)


def main():
    a = ARGS
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_ref.py: --device cuda but torch.cuda.is_available() is False")
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed + 0x5EED)
    model, opt, loss_fn, items, fwd_flops = setup(a.workload, dev, gen)
    model.train()

    last = [0.0]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        last[0] = loss.item()

    for _ in range(a.warmup):
        step()
    ms = []
    for _ in range(a.steps):
        if a.device == "cuda":
            t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0.record()
            step()
            t1.record()
            torch.cuda.synchronize()
            ms.append(t0.elapsed_time(t1))
        else:
            t0 = time.perf_counter()
            step()
            ms.append((time.perf_counter() - t0) * 1e3)
    if not math.isfinite(last[0]):
        sys.exit(f"torch_ref.py: {a.workload}: the loss is {last[0]}")
    m = statistics.median(ms)
    flop = 3.0 * fwd_flops
    if a.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({
        "workload": a.workload, "device": a.device, "threads": torch.get_num_threads(), "memel": "none",
        "step_ms": m, "items_per_s": items / (m / 1e3), "gflops": flop / (m * 1e6), "peak_mem_mb": peak,
        "gflop_per_step": flop / 1e9, "params": sum(p.numel() for p in model.parameters()),
        "steps": a.steps, "warmup": a.warmup, "seed": a.seed, "loss": last[0], "torch": torch.__version__,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"), "kernels": kernels(),
        "python": sys.executable,
    }), flush=True)


if __name__ == "__main__":
    main()
