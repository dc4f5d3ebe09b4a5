"""A small conditional UNet trained on the toy world's references: the `trained` world's denoiser.

It predicts the noise (epsilon) of a 64x64 image under Stable Diffusion's schedule, conditioned on
an object and a view word. The conditioning is a vector of one-hot blocks (objects + "none", view
labels + "none") mapped linearly, so a blend of two prompts' vectors (Perp-Neg) is a blend of their
embeddings, as with a text encoder. The network convolves at 32x32 after a pixel unshuffle: a
quarter of the cost of convolving at 64x64, the 2x2 sub-pixels travelling as channels.

Weights live in a safetensors file whose metadata (JSON) names the objects in training order and
the channel widths, so loading never unpickles anything.
"""
from __future__ import annotations

import json
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..cameras import VIEW_LABELS
from .denoiser_file import FORMAT, read_metadata


def condition_vectors(n_objects: int, objects: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """(B, n_objects + 1 + len(VIEW_LABELS) + 1): one-hot object index (n_objects: none), then one-hot
    view-label index (len(VIEW_LABELS): none)."""
    c = torch.zeros(len(objects), n_objects + 1 + len(VIEW_LABELS) + 1)
    rows = torch.arange(len(objects))
    c[rows, objects] = 1
    c[rows, n_objects + 1 + words] = 1
    return c


class _Block(nn.Module):
    """GroupNorm -> SiLU -> conv, the conditioning as a scale and shift, -> SiLU -> conv, plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(e)[:, :, None, None].chunk(2, 1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.conv2(F.silu(h)) + self.skip(x)


class _Attention(nn.Module):
    """Self-attention over the coarsest grid (8x8), so a face can be placed by the whole outline."""

    def __init__(self, c: int, heads: int = 4):
        super().__init__()
        self.heads, self.norm = heads, nn.GroupNorm(8, c)
        self.qkv, self.out = nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(a.transpose(-1, -2).reshape(b, c, h, w))


class ToyDenoiser(nn.Module):
    """eps(x_t, t, c) for x_t (B, 3, 64, 64), t (B,) in [0, 1000), c (B, cond_dim) from `condition`."""

    def __init__(self, objects: list[str], channels: tuple[int, ...] = (64, 128, 128), emb: int = 128):
        super().__init__()
        self.objects, self.channels, self.emb_dim = list(objects), tuple(channels), emb
        self.time = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.cond = nn.Linear(self.cond_dim, emb, bias=False)
        ch = self.channels
        self.inp = nn.Conv2d(12, ch[0], 3, padding=1)
        self.down = nn.ModuleList([_Block(ch[max(i - 1, 0)], ch[i], emb) for i in range(len(ch))])
        self.mid1, self.attn, self.mid2 = _Block(ch[-1], ch[-1], emb), _Attention(ch[-1]), _Block(ch[-1], ch[-1], emb)
        self.up = nn.ModuleList([_Block(2 * ch[i], ch[max(i - 1, 0)], emb) for i in reversed(range(len(ch)))])
        self.out = nn.Conv2d(ch[0], 12, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # predicts zero noise before training
        nn.init.zeros_(self.out.bias)

    @property
    def cond_dim(self) -> int:
        return len(self.objects) + 1 + len(VIEW_LABELS) + 1

    def condition(self, obj: int | None, label: str | None) -> torch.Tensor:
        """The conditioning vector: one-hot object (None: the empty prompt) and one-hot view word."""
        n = len(self.objects)
        word = len(VIEW_LABELS) if label is None else VIEW_LABELS.index(label)
        return condition_vectors(n, torch.tensor([n if obj is None else obj]), torch.tensor([word]))[0]

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        half = self.emb_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
        angle = t.float()[:, None] * freqs[None]
        return torch.cat([angle.sin(), angle.cos()], -1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        e = F.silu(self.time(self.time_features(t)) + self.cond(c))
        h, skips = self.inp(F.pixel_unshuffle(x_t, 2)), []
        for i, block in enumerate(self.down):
            h = block(h, e)
            skips.append(h)
            if i < len(self.down) - 1:
                h = F.avg_pool2d(h, 2)
        h = self.mid2(self.attn(self.mid1(h, e)), e)
        for j, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], 1), e)
            if j < len(self.up) - 1:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return F.pixel_shuffle(self.out(h), 2)


def save_denoiser(net: ToyDenoiser, path, extra: dict | None = None) -> None:
    """Weights as float32 safetensors; objects, channels and `extra` (training facts) as metadata."""
    from safetensors.torch import save_file

    meta = {"format": FORMAT, "objects": net.objects, "channels": list(net.channels), "emb": net.emb_dim,
            **(extra or {})}
    state = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"dreamer": json.dumps(meta)})


def load_denoiser(path) -> tuple[ToyDenoiser, dict]:
    """(the network in eval mode, its metadata). Raises ValueError on a file that is not one."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    net = ToyDenoiser(meta["objects"], tuple(meta["channels"]), meta["emb"])
    net.load_state_dict(load_file(str(path)))
    return net.eval().requires_grad_(False), meta
