#!/usr/bin/python3
"""PyTorch CPU baseline for `phiforge bench-train`: the same Phi-3-shaped model (random f32 weights,
fused qkv and gate_up, RMSNorm, NeoX RoPE, causal attention, SwiGLU), the same LoRA (rank r on qkv,
o, gate_up, down; alpha 2r), AdamW on the adapters, one row of --seq tokens per optimizer step, all
tokens targets. Prints tokens/s (mean and best over --steps timed steps after a warm-up) and peak RSS.

usage: bench/bench_train_torch.py [--layers 8] [--embd 1024] [--ff 2816] [--heads 16] [--seq 512]
                                  [--rank 16] [--steps 3] [--threads 2] [--grad-checkpoint]
"""
import argparse
import math
import resource
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

ap = argparse.ArgumentParser()
for k, v in (("layers", 8), ("embd", 1024), ("ff", 2816), ("heads", 16), ("seq", 512), ("rank", 16), ("steps", 3),
             ("threads", 2), ("vocab", 32064)):
    ap.add_argument(f"--{k}", type=int, default=v)
ap.add_argument("--grad-checkpoint", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
E, FF, H, S, R, V = a.embd, a.ff, a.heads, a.seq, a.rank, a.vocab
D = E // H


class Lora(torch.nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(n_out, n_in) / math.sqrt(n_in), requires_grad=False)
        self.a = torch.nn.Parameter(torch.empty(R, n_in).uniform_(-1 / math.sqrt(n_in), 1 / math.sqrt(n_in)))
        self.b = torch.nn.Parameter(torch.zeros(n_out, R))
        self.s = 2.0 * R / R

    def forward(self, x):
        return x @ self.w.T + self.s * ((x @ self.a.T) @ self.b.T)


def rms(x, g):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * g


half = D // 2
inv = 10000.0 ** (-2.0 * torch.arange(half) / D)
ang = torch.arange(S)[:, None] * inv[None]
COS, SIN = torch.cos(ang)[:, None], torch.sin(ang)[:, None]


def rope(x):
    x0, x1 = x[..., :half], x[..., half:]
    return torch.cat([x0 * COS - x1 * SIN, x1 * COS + x0 * SIN], -1)


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv, self.o, self.gu, self.down = Lora(E, 3 * E), Lora(E, E), Lora(E, 2 * FF), Lora(FF, E)
        self.n1 = torch.nn.Parameter(torch.ones(E), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(E), requires_grad=False)

    def forward(self, x):
        qkv = self.qkv(rms(x, self.n1))
        q, k, v = (t.reshape(S, H, D) for t in qkv.split(E, -1))
        q, k = rope(q), rope(k)
        s = torch.einsum("thd,jhd->htj", q, k) / math.sqrt(D)
        s = s.masked_fill(~torch.tril(torch.ones(S, S, dtype=torch.bool))[None], float("-inf"))
        x = x + self.o(torch.einsum("htj,jhd->thd", torch.softmax(s, -1), v).reshape(S, E))
        g, u = self.gu(rms(x, self.n2)).split(FF, -1)
        return x + self.down(F.silu(g) * u)


layers = torch.nn.ModuleList(Layer() for _ in range(a.layers))
emb = torch.randn(V, E) / math.sqrt(E)
out = torch.randn(V, E) / math.sqrt(E)
params = [p for p in layers.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=2e-4)
ids = torch.randint(0, 32000, (S,))
tg = torch.cat([ids[1:], torch.tensor([-1])])


def step():
    x = emb[ids]
    for l in layers:
        x = checkpoint(l, x, use_reentrant=False) if a.grad_checkpoint else l(x)
    loss = F.cross_entropy(rms(x, 1.0) @ out.T, tg, ignore_index=-1)
    opt.zero_grad()
    loss.backward()
    opt.step()


times, cpu = [], 0.0
for k in range(a.steps + 1):
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    dt = time.perf_counter() - t0
    if k:
        times.append(dt)
        cpu += time.process_time() - c0
    print(f"{'timed' if k else 'warm-up'} step: {dt:.3f} s ({S / dt:.1f} tokens/s)")
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(f"torch {torch.__version__}, {a.threads} threads: {S * a.steps / sum(times):.1f} tokens/s mean over {a.steps} "
      f"steps (best {S / min(times):.1f}), {S * a.steps / cpu:.1f} tokens per CPU-second, peak RSS {rss / 1e9:.2f} GB")
