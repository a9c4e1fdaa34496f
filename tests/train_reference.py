#!/usr/bin/python3
"""PyTorch reference for the LoRA trainer (run by tests/test_train.c).

Builds the same Phi-3 forward as the C trainer from the raw f32 weights the test exported to DIR,
in float64: embedding, RMSNorm, fused qkv with NeoX RoPE (LongRoPE factors and magnitude when
given), causal attention restricted to each packed sample (equal seg), GQA, SwiGLU on the fused
gate|up, residuals, output projection, cross-entropy over targets != -1 summed and divided by the
target count of the whole accumulated batch. LoRA (PEFT semantics) on qkv, o, gate_up, down:
y = W x + s * B (A x). torch.optim.AdamW with HF's warmup+cosine/linear/constant LambdaLR and
torch.nn.utils.clip_grad_norm_. With "full 1" in hparams.txt every weight trains instead (no
LoRA; norms without weight decay). Writes DIR/grads0.f64 (gradients of the flat trainable parameters at
step 0, before clipping) and DIR/losses.f64 (mean token loss of each step).
"""
import math
import sys

import numpy as np
import torch

D = sys.argv[1]
torch.set_num_threads(1)
hp = {}
for line in open(f"{D}/hparams.txt"):
    k, v = line.split()
    hp[k] = float(v)
I = lambda k: int(hp[k])
L, E, F, NH, NKV, HD, NROT, V = (I(k) for k in ("n_layer", "n_embd", "n_ff", "n_head", "n_head_kv", "head_dim",
                                                  "n_rot", "n_vocab"))
R = I("rank")
dt = torch.float64


def load(name, *shape):
    return torch.from_numpy(np.fromfile(f"{D}/{name}.f32", dtype=np.float32).astype(np.float64)).reshape(*shape)


W = {"tok": load("token_embd", V, E), "onorm": load("output_norm", E), "out": load("output", V, E)}
for l in range(L):
    W[l, "n1"] = load(f"blk.{l}.attn_norm", E)
    W[l, "n2"] = load(f"blk.{l}.ffn_norm", E)
    W[l, 0] = load(f"blk.{l}.attn_qkv", E + 2 * NKV * HD, E)
    W[l, 1] = load(f"blk.{l}.attn_output", E, E)
    W[l, 2] = load(f"blk.{l}.ffn_up", 2 * F, E)
    W[l, 3] = load(f"blk.{l}.ffn_down", E, F)
ff = load("rope_ff", NROT // 2) if hp["has_ff"] else torch.ones(NROT // 2, dtype=dt)

FULL = int(hp.get("full", 0))
if FULL:
    # full fine-tuning: every weight trains, flat in the C trainer's order (norms first, no weight decay on
    # them, as HF's Trainer), then qkv, o, gate_up, down per layer, output, token_embd
    norms = [W[l, k] for l in range(L) for k in ("n1", "n2")] + [W["onorm"]]
    mats = [W[l, m] for l in range(L) for m in range(4)] + [W["out"], W["tok"]]
    for p_ in norms + mats:
        p_.requires_grad_(True)
    params, lora, scale = norms + mats, {}, 0.0
    groups = [{"params": norms, "weight_decay": 0.0}, {"params": mats}]
else:
    # flat LoRA parameters, same order as the C trainer: per layer, per module (qkv, o, gate_up, down): A then B
    flat = torch.from_numpy(np.fromfile(f"{D}/params.f32", dtype=np.float32).astype(np.float64))
    shapes = []
    for l in range(L):
        for m in range(4):
            if I("targets") & (1 << m):
                n_out, n_in = W[l, m].shape
                shapes.append(((l, m), (R, n_in), (n_out, R)))
    params, lora, off = [], {}, 0
    for key, sa, sb in shapes:
        a = flat[off:off + sa[0] * sa[1]].reshape(sa).clone().requires_grad_(True); off += sa[0] * sa[1]
        b = flat[off:off + sb[0] * sb[1]].reshape(sb).clone().requires_grad_(True); off += sb[0] * sb[1]
        lora[key] = (a, b)
        params += [a, b]
    assert off == flat.numel(), (off, flat.numel())
    scale = hp["alpha"] / (math.sqrt(R) if hp["rslora"] else R)
    groups = params

raw = np.fromfile(f"{D}/rows.i32", dtype=np.int32)
rows, i = [], 0
while i < raw.size:
    n = int(raw[i]); i += 1
    rows.append([torch.from_numpy(raw[i + k * n:i + (k + 1) * n].astype(np.int64)) for k in range(4)])
    i += 4 * n


def rmsnorm(x, g):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + hp["rms_eps"]) * g


def linear(x, l, m):
    y = x @ W[l, m].T
    if (l, m) in lora:
        a, b = lora[l, m]
        y = y + scale * ((x @ a.T) @ b.T)
    return y


def rope(x, pos):  # x: [n, heads, HD]; NeoX pairs (i, i + NROT/2), magnitude m
    half = NROT // 2
    inv = hp["rope_theta"] ** (-2.0 * torch.arange(half, dtype=dt) / NROT) / ff
    ang = pos.to(dt)[:, None] * inv[None, :]
    c = (hp["rope_attn_factor"] * torch.cos(ang))[:, None, :]
    s = (hp["rope_attn_factor"] * torch.sin(ang))[:, None, :]
    x0, x1, rest = x[..., :half], x[..., half:NROT], x[..., NROT:]
    return torch.cat([x0 * c - x1 * s, x1 * c + x0 * s, rest], -1)


def row_loss(ids, tg, pos, seg):
    n = ids.numel()
    x = W["tok"][ids]
    causal = torch.tril(torch.ones(n, n, dtype=torch.bool)) & (seg[:, None] == seg[None, :])
    for l in range(L):
        qkv = linear(rmsnorm(x, W[l, "n1"]), l, 0)
        q = rope(qkv[:, :E].reshape(n, NH, HD), pos)
        k = rope(qkv[:, E:E + NKV * HD].reshape(n, NKV, HD), pos)
        v = qkv[:, E + NKV * HD:].reshape(n, NKV, HD)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        s = torch.einsum("thd,jhd->htj", q, k) / math.sqrt(HD)
        s = s.masked_fill(~causal[None], float("-inf"))
        o = torch.einsum("htj,jhd->thd", torch.softmax(s, -1), v).reshape(n, NH * HD)
        x = x + linear(o, l, 1)
        gu = linear(rmsnorm(x, W[l, "n2"]), l, 2)
        x = x + linear(torch.nn.functional.silu(gu[:, :F]) * gu[:, F:], l, 3)
    logits = rmsnorm(x, W["onorm"]) @ W["out"].T
    return torch.nn.functional.cross_entropy(logits, tg, ignore_index=-1, reduction="sum"), int((tg >= 0).sum())


warm, total, sched = I("warmup"), I("total"), I("schedule")


def lr_lambda(k):  # HF get_{cosine,linear,constant}_schedule_with_warmup
    if k < warm:
        return k / max(1, warm)
    span = max(1, total - warm)
    if sched == 0:
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * (k - warm) / span)))
    if sched == 1:
        return max(0.0, (total - k) / span)
    return 1.0


opt = torch.optim.AdamW(groups, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                        weight_decay=hp["wd"])
lrs = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
accum, losses = I("accum"), []
for step in range(I("steps")):
    batch = rows[step * accum:(step + 1) * accum]
    n_tok = sum(int((r[1] >= 0).sum()) for r in batch)
    opt.zero_grad()
    total_loss = 0.0
    for r in batch:
        loss, _ = row_loss(*r)
        (loss / n_tok).backward()
        total_loss += loss.item()
    losses.append(total_loss / n_tok)
    if step == 0:
        torch.cat([p.grad.reshape(-1) for p in params]).numpy().tofile(f"{D}/grads0.f64")
    if hp["clip"] > 0:
        torch.nn.utils.clip_grad_norm_(params, hp["clip"])
    opt.step()
    lrs.step()
np.array(losses, dtype=np.float64).tofile(f"{D}/losses.f64")
