#!/usr/bin/env python3
"""Time one denoising step (transformer forward, B = 1, no guidance) of the *small* benchmark config in
PyTorch, to put next to `npm run bench -- --only step` (src/bench/suite.ts, row `step small`).

Optional: the project never depends on it (no torch in CI); `npm run bench -- --only step --reference`
runs it next to the TypeScript row (same thread count) when a Python with torch >= 1.13 is found. By hand:

    python3 benchmarks/reference/pytorch_step.py [--threads 2] [--device cpu|cuda] [--reps 3] [--quick]
                                                 [--attention blockwise|dense] [--check]

The model of the TypeScript row (`smallTransformerConfig`), random weights: 8 CogVideoX blocks, D 512
(8 heads x 64), expert adaLN (LayerNormZero: one Linear(512, 6·D) per norm, shift/scale/gate for video and
for text), q/k LayerNorm, 3D RoPE on the video rows of q and k, MLP 4·D with GELU-tanh; patch embedding
(16 channels, patch 2) and text projection (4,096 → 512), timestep embedding, norm_final, the output
adaLN and projection, unpatchify. 3 scenes x (64 text + 2,048 video tokens) (--quick: 3 x (64 + 128)).
The Mask2DiT dual mask (scene i's text sees [text_i; video_i]; scene i's video sees [text_i; all video]):
  blockwise  (default) block by block, no [L, L] tensor: the schedule of the Mask2DiT reference processor
             (CogVideoXAttnProcessor2_2: per scene, attention over the gathered keys) and of
             src/layers/maskedAttention.ts (1,024 query rows per score block); SDPA on torch >= 2,
             an explicit softmax on 1.13
  dense      a naive dense boolean [L, L] mask (SDPA attn_mask on torch >= 2, masked softmax on 1.13):
             not how the reference works; shown for what materialising the mask costs
--check runs both schedules on one random q, k, v of the chosen size and prints max |dense - blockwise|.
Prints one JSON line.
"""
import argparse, json, math, os, platform, time
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--device", default="cpu")
p.add_argument("--reps", type=int, default=3)
p.add_argument("--quick", action="store_true")
p.add_argument("--attention", choices=["blockwise", "dense"], default="blockwise")
p.add_argument("--check", action="store_true")
a = p.parse_args()
torch.set_num_threads(a.threads)
dev = torch.device(a.device)
D, H, d, LAYERS, TEXT_DIM, S, TEXT = 512, 8, 64, 8, 4096, 3, 64
FRAMES, LH, LW = (1, 16, 32) if a.quick else (4, 32, 64)  # latents per scene (patch 2 → FRAMES·LH/2·LW/2 tokens)
VIDEO = FRAMES * (LH // 2) * (LW // 2)


def modulate(norm, x, Lt, m):
    """LayerNorm, then (1 + scale)·x + shift with the video chunks on rows Lt.. and the text chunks on rows ..Lt."""
    h = norm(x)
    shift, scale, gate, e_shift, e_scale, e_gate = m
    t = h[:, :Lt] * (1 + e_scale[:, None]) + e_shift[:, None]
    v = h[:, Lt:] * (1 + scale[:, None]) + shift[:, None]
    return torch.cat([t, v], 1), torch.cat([e_gate[:, None].expand(-1, Lt, -1), gate[:, None].expand(-1, x.shape[1] - Lt, -1)], 1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ada1, self.ada2 = nn.Linear(512, 6 * D), nn.Linear(512, 6 * D)  # LayerNormZero: video and text shift/scale/gate
        self.ln1, self.ln2 = nn.LayerNorm(D, eps=1e-5), nn.LayerNorm(D, eps=1e-5)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.nq, self.nk = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
        self.ff1, self.ff2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

    def forward(self, x, temb, mask, Lt, rope):
        h, g = modulate(self.ln1, x, Lt, self.ada1(F.silu(temb)).chunk(6, -1))
        B, L, _ = h.shape
        q = rotate(self.nq(self.q(h).view(B, L, H, d).transpose(1, 2)), Lt, rope)
        k = rotate(self.nk(self.k(h).view(B, L, H, d).transpose(1, 2)), Lt, rope)
        v = self.v(h).view(B, L, H, d).transpose(1, 2)
        o = blockwise(q, k, v) if mask is None else dense(q, k, v, mask)
        x = x + g * self.o(o.transpose(1, 2).reshape(B, L, D))
        h, g = modulate(self.ln2, x, Lt, self.ada2(F.silu(temb)).chunk(6, -1))
        return x + g * self.ff2(F.gelu(self.ff1(h), approximate="tanh"))


def rotate(x, Lt, rope):
    """RoPE on rows Lt.. of x [B, H, L, d]: x·cos + rotate_half(x)·sin, pairs (x0, x1) -> (-x1, x0)."""
    cos, sin = rope
    t, v = x[:, :, :Lt], x[:, :, Lt:]
    half = torch.stack((-v[..., 1::2], v[..., 0::2]), -1).flatten(-2)
    return torch.cat([t, v * cos + half * sin], 2)


HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def attend(q, k, v):
    """softmax(q·kᵀ/√d)·v; on 1.13 q is scaled once (as maskedAttention.ts does), not the score block."""
    if HAS_SDPA:
        return F.scaled_dot_product_attention(q, k, v)
    return (q * d ** -0.5 @ k.transpose(-1, -2)).softmax(-1) @ v


def dense(q, k, v, mask):
    if HAS_SDPA:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return (q * d ** -0.5 @ k.transpose(-1, -2)).masked_fill_(~mask, float("-inf")).softmax(-1) @ v


def blockwise(q, k, v):
    """The dual mask block by block, no [L, L] tensor."""
    Lt = S * TEXT
    out = torch.empty_like(q)
    for i in range(S):
        t, vv = slice(i * TEXT, (i + 1) * TEXT), slice(Lt + i * VIDEO, Lt + (i + 1) * VIDEO)
        keys = lambda x, rest: torch.cat([x[:, :, t], x[:, :, rest]], 2)  # gathered once per block
        out[:, :, t] = attend(q[:, :, t], keys(k, vv), keys(v, vv))  # text_i -> [text_i; video_i]
        kb, vb = keys(k, slice(Lt, None)), keys(v, slice(Lt, None))
        for c in range(vv.start, vv.stop, 1024):  # video_i -> [text_i; all video], 1,024 query rows at a time
            r = slice(c, min(c + 1024, vv.stop))
            out[:, :, r] = attend(q[:, :, r], kb, vb)
    return out


def rope_tables():
    """cos/sin [S·VIDEO, d] over (frame, row, col): d/4 of the width for time, 3d/8 each for rows and columns."""
    dt, dh = d // 4, 3 * d // 8
    def axis(n, dim):
        f = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        a = torch.outer(torch.arange(n).float(), f)
        return a.repeat_interleave(2, -1)  # [n, dim], each angle on a pair
    T, GH, GW = S * FRAMES, LH // 2, LW // 2
    ang = torch.cat([axis(T, dt)[:, None, None].expand(T, GH, GW, dt), axis(GH, dh)[None, :, None].expand(T, GH, GW, dh),
                     axis(GW, dh)[None, None].expand(T, GH, GW, dh)], -1).reshape(-1, d)
    return ang.cos(), ang.sin()


def dual_mask():
    Lt, Lv = S * TEXT, S * VIDEO
    L = Lt + Lv
    m = torch.zeros(L, L, dtype=torch.bool)
    for i in range(S):
        t, vv = slice(i * TEXT, (i + 1) * TEXT), slice(Lt + i * VIDEO, Lt + (i + 1) * VIDEO)
        m[t, t] = True; m[t, vv] = True  # text_i → [text_i; video_i]
        m[vv, t] = True; m[vv, Lt:] = True  # video_i → [text_i; all video]
    return m


def timestep_embedding(t, dim=D):
    """CogVideoX's sinusoidal time projection (flip_sin_to_cos, shift 0): [cos | sin]."""
    f = torch.exp(-math.log(10000) * torch.arange(dim // 2, device=t.device).float() / (dim // 2))
    a = t[:, None].float() * f[None]
    return torch.cat([a.cos(), a.sin()], -1)


@torch.no_grad()
def main():
    torch.manual_seed(0)
    L = S * (TEXT + VIDEO)
    if a.check:
        q, k, v = (torch.randn(1, H, L, d, device=dev) for _ in range(3))
        print(json.dumps({"check": "max |dense - blockwise|", "L": L, "maxAbsDiff": (dense(q, k, v, dual_mask().to(dev)) - blockwise(q, k, v)).abs().max().item()}))
        return
    blocks = nn.ModuleList(Block() for _ in range(LAYERS)).to(dev).eval()
    patch = nn.Conv2d(16, D, 2, 2).to(dev)
    text_proj = nn.Linear(TEXT_DIM, D).to(dev)
    time_mlp = nn.Sequential(nn.Linear(D, 512), nn.SiLU(), nn.Linear(512, 512)).to(dev)
    norm_final, norm_out = nn.LayerNorm(D, eps=1e-5).to(dev), nn.LayerNorm(D, eps=1e-6, elementwise_affine=False).to(dev)
    ada_out, proj_out = nn.Linear(512, 2 * D).to(dev), nn.Linear(D, 16 * 4).to(dev)
    lat = torch.randn(1, S * FRAMES, 16, LH, LW, device=dev)
    txt = torch.randn(1, S * TEXT, TEXT_DIM, device=dev)
    t = torch.tensor([500], device=dev)
    mask = dual_mask().to(dev) if a.attention == "dense" else None
    rope = tuple(x.to(dev) for x in rope_tables())
    Lt = S * TEXT

    def step():
        temb = time_mlp(timestep_embedding(t).to(dev))
        v = patch(lat.flatten(0, 1)).flatten(2).transpose(1, 2).reshape(1, -1, D)  # [1, Lv, D], (frame, row, col)
        x = torch.cat([text_proj(txt), v], 1)
        for b in blocks:
            x = b(x, temb, mask, Lt, rope)
        x = norm_final(x)[:, Lt:]
        shift, scale = ada_out(F.silu(temb)).chunk(2, -1)
        x = proj_out(norm_out(x) * (1 + scale[:, None]) + shift[:, None])  # [1, Lv, 16·2·2]
        out = x.view(1, S * FRAMES, LH // 2, LW // 2, 16, 2, 2).permute(0, 1, 4, 2, 5, 3, 6).reshape(1, S * FRAMES, 16, LH, LW)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return out

    step()
    ts = []
    for _ in range(a.reps):
        t0 = time.perf_counter(); step(); ts.append((time.perf_counter() - t0) * 1000)
    ms = sorted(ts)[len(ts) // 2]
    print(json.dumps({"component": "step", "config": f"small: {LAYERS}L D {D}, {S} scene × ({TEXT} + {VIDEO}), B 1, L {L}", "backend": f"torch {torch.__version__} {a.device}", "attention": a.attention,
                      "threads": a.threads, "msPerCall": round(ms, 1), "tokensPerS": round(L / ms * 1000, 1), "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d")}))


main()
