#!/usr/bin/env python3
"""Time one denoising step (transformer forward, B = 1, no guidance) of the *small* benchmark config in
PyTorch, to put next to `npm run bench -- --only step` (src/bench/suite.ts, row `step small`).

Optional: the project never depends on it (no torch in CI); `npm run bench -- --only step --reference`
runs it next to the TypeScript row when a Python with torch >= 1.13 is found. By hand:

    python3 benchmarks/reference/pytorch_step.py [--threads 2] [--device cpu|cuda] [--reps 3] [--quick]
                                                 [--attention dense|blockwise]

Same shapes and FLOPs as the TypeScript row: 8 layers, D 512 (8 heads x 64), MLP 4·D (GELU tanh),
3 scenes x (64 text + 2,048 video tokens) (--quick: 3 x (64 + 128)), text_embed_dim 4096, latents
16 channels patch 2, 3D RoPE on the video rows of q and k, and the Mask2DiT dual mask (scene i's text
sees [text_i; video_i]; scene i's video sees [text_i; all video]), computed one of two ways:
  dense      (default) a dense boolean [L, L] mask, as the reference processor does: through
             scaled_dot_product_attention (torch >= 2) or an explicit masked softmax (1.13)
  blockwise  the same block-wise schedule as src/layers/maskedAttention.ts (per scene: text queries
             against [text_i; video_i], video queries against [text_i; all video]; all heads in one bmm)
Random weights: only the time matters. Prints one JSON line.
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
p.add_argument("--attention", choices=["dense", "blockwise"], default="dense")
a = p.parse_args()
torch.set_num_threads(a.threads)
dev = torch.device(a.device)
D, H, d, LAYERS, TEXT_DIM, S, TEXT = 512, 8, 64, 8, 4096, 3, 64
FRAMES, LH, LW = (1, 16, 32) if a.quick else (4, 32, 64)  # latents per scene (patch 2 → FRAMES·LH/2·LW/2 tokens)
VIDEO = FRAMES * (LH // 2) * (LW // 2)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = nn.Linear(512, 12 * D), nn.Linear(512, 12 * D)  # LayerNormZero modulation (text + video)
        self.ln = nn.LayerNorm(D, elementwise_affine=True, eps=1e-5)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.nq, self.nk = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
        self.ff1, self.ff2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

    def forward(self, x, temb, mask, Lt, rope):
        m = self.norm1(F.silu(temb)).chunk(12, -1)
        h = self.ln(x) * (1 + m[1][:, None]) + m[0][:, None]
        B, L, _ = h.shape
        q = rotate(self.nq(self.q(h).view(B, L, H, d).transpose(1, 2)), Lt, rope)
        k = rotate(self.nk(self.k(h).view(B, L, H, d).transpose(1, 2)), Lt, rope)
        v = self.v(h).view(B, L, H, d).transpose(1, 2)
        if mask is None:
            o = blockwise(q, k, v)
        elif hasattr(F, "scaled_dot_product_attention"):
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
            o = s.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + m[2][:, None] * self.o(o.transpose(1, 2).reshape(B, L, D))
        m = self.norm2(F.silu(temb)).chunk(12, -1)
        h = self.ln(x) * (1 + m[1][:, None]) + m[0][:, None]
        return x + m[2][:, None] * self.ff2(F.gelu(self.ff1(h), approximate="tanh"))


def rotate(x, Lt, rope):
    """RoPE on rows Lt.. of x [B, H, L, d]: x·cos + rotate_half(x)·sin, pairs (x0, x1) -> (-x1, x0)."""
    cos, sin = rope
    t, v = x[:, :, :Lt], x[:, :, Lt:]
    half = torch.stack((-v[..., 1::2], v[..., 0::2]), -1).flatten(-2)
    return torch.cat([t, v * cos + half * sin], 2)


def attend(q, k, v):
    return ((q @ k.transpose(-1, -2)) / math.sqrt(d)).softmax(-1) @ v


def blockwise(q, k, v):
    """The dual mask block by block, no [L, L] tensor: the schedule of src/layers/maskedAttention.ts."""
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


@torch.no_grad()
def main():
    torch.manual_seed(0)
    blocks = nn.ModuleList(Block() for _ in range(LAYERS)).to(dev).eval()
    patch = nn.Conv2d(16, D, 2, 2).to(dev)
    text_proj, proj_out = nn.Linear(TEXT_DIM, D).to(dev), nn.Linear(D, 16 * 4).to(dev)
    lat = torch.randn(1, S * FRAMES, 16, LH, LW, device=dev)
    txt = torch.randn(1, S * TEXT, TEXT_DIM, device=dev)
    temb = torch.randn(1, 512, device=dev)
    mask = dual_mask().to(dev) if a.attention == "dense" else None
    rope = tuple(t.to(dev) for t in rope_tables())

    def step():
        v = patch(lat.flatten(0, 1)).flatten(2).transpose(1, 2).reshape(1, -1, D)
        x = torch.cat([text_proj(txt), v], 1)
        for b in blocks:
            x = b(x, temb, mask, S * TEXT, rope)
        out = proj_out(x[:, S * TEXT:])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return out

    step()
    ts = []
    for _ in range(a.reps):
        t0 = time.perf_counter(); step(); ts.append((time.perf_counter() - t0) * 1000)
    ms = sorted(ts)[len(ts) // 2]
    L = S * (TEXT + VIDEO)
    print(json.dumps({"component": "step", "config": f"small: {LAYERS}L D {D}, {S} scene × ({TEXT} + {VIDEO}), B 1, L {L}", "backend": f"torch {torch.__version__} {a.device}", "attention": a.attention,
                      "threads": a.threads, "msPerCall": round(ms, 1), "tokensPerS": round(L / ms * 1000, 1), "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d")}))


main()
