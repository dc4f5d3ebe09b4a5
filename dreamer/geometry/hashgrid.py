"""Multi-resolution hash encoding (Instant-NGP) in plain PyTorch, with tinycudann's config keys.

Level l has resolution floor(base_resolution * per_level_scale ** l). A level whose (res + 1)^3
corners fit in the table is indexed densely; larger levels hash corners with the Instant-NGP
primes. Features are trilinearly interpolated from the 8 corners.
With geometry.pos_encoding.backend=tinycudann, `make_encoding` returns tinycudann's fused HashGrid
instead: CUDA only, and its table layout differs from ours, so a run keeps the backend it started
with (checkpoints of one are refused by the other with a message, not converted).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError
from ..gather import gather_rows
from ..yamldata import first_line

PRIMES = (1, 2654435761, 805459861)


class HashGrid(nn.Module):
    def __init__(self, n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16,
                 per_level_scale=1.447269237440378):
        super().__init__()
        self.n_levels, self.n_features = n_levels, n_features_per_level
        self.table_size = 2 ** log2_hashmap_size
        self.resolutions = [int(math.floor(base_resolution * per_level_scale ** level))
                            for level in range(n_levels)]
        sizes = [min((r + 1) ** 3, self.table_size) for r in self.resolutions]
        self.offsets = [0]
        for s in sizes:
            self.offsets.append(self.offsets[-1] + s)
        self.embeddings = nn.Parameter(torch.empty(self.offsets[-1], n_features_per_level).uniform_(-1e-4, 1e-4))

    @property
    def output_dim(self) -> int:
        return self.n_levels * self.n_features

    def _corner_index(self, level: int, base: torch.Tensor) -> torch.Tensor:
        """Table rows (N, 8) of the 8 corners of each point's cell, corner order (x, y, z) bits."""
        res, size = self.resolutions[level], self.offsets[level + 1] - self.offsets[level]
        if (res + 1) ** 3 <= self.table_size:  # dense: the cell's first corner plus each corner's fixed offset
            strides = base.new_tensor([(res + 1) ** 2, res + 1, 1])
            corner_step = (_CORNER_BITS.to(base.device) * strides).sum(-1)  # (8,)
            return ((base * strides).sum(-1, keepdim=True) + corner_step) + self.offsets[level]
        step = torch.arange(2, device=base.device)  # made there: no host-to-device copy per call
        hx, hy, hz = ((base[:, i:i + 1] + step) * PRIMES[i] for i in range(3))  # (N, 2) per axis
        # the table size is a power of two, so the hash's modulo is a mask (and it is cheaper)
        idx = (hx[:, :, None, None] ^ hy[:, None, :, None] ^ hz[:, None, None, :]) & (size - 1)
        return idx.reshape(-1, 8) + self.offsets[level]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3) in [0, 1] -> features (N, n_levels * n_features)."""
        x = x.clamp(0, 1)
        feats = []
        # level by level: one gather of all levels at once measured twice as slow on the CPU (its index
        # spans the whole table, and slicing levels out of one tensor costs full-size zeros in backward)
        for level, res in enumerate(self.resolutions):
            pos = x * res
            base = pos.floor().clamp_max(res - 1)
            corners = gather_rows(self.embeddings, self._corner_index(level, base.long()))  # (N, 8, F)
            feats.append(_trilinear(corners.view(-1, 2, 2, 2, self.n_features), pos - base))
        return torch.cat(feats, -1)


_CORNER_BITS = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])  # corner c's (x, y, z) bits


def _trilinear(corners: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """corners (..., 2, 2, 2, F) indexed by (x, y, z) bit, frac (..., 3) -> (..., F): three lerps, one per
    axis (a third of the time of weighing the 8 corners with their product weights on the CPU)."""
    along_x = torch.lerp(corners[..., 0, :, :, :], corners[..., 1, :, :, :], frac[..., 0, None, None, None])
    along_y = torch.lerp(along_x[..., 0, :, :], along_x[..., 1, :, :], frac[..., 1, None, None])
    return torch.lerp(along_y[..., 0, :], along_y[..., 1, :], frac[..., 2, None])


def tinycudann_missing() -> str | None:
    """Why tinycudann cannot run here, or None when it can."""
    if not torch.cuda.is_available():
        return "this machine has no CUDA GPU"
    try:
        import tinycudann  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"tinycudann does not import ({first_line(exc, 120)})"
    return None


def check_backend(cfg) -> None:
    """geometry.pos_encoding.backend can run on this machine (raises UserError otherwise)."""
    if cfg.backend == "tinycudann":
        reason = tinycudann_missing()
        if reason:
            raise UserError(f"geometry.pos_encoding.backend=tinycudann but {reason}; run it on a CUDA machine "
                            f"with tinycudann installed, or start a new run with backend=torch")


def make_encoding(cfg) -> nn.Module:
    """Our PyTorch HashGrid, or tinycudann's when geometry.pos_encoding.backend asks for it."""
    check_backend(cfg)
    if cfg.backend == "tinycudann":
        return TcnnHashGrid(cfg)
    return HashGrid(cfg.n_levels, cfg.n_features_per_level, cfg.log2_hashmap_size, cfg.base_resolution,
                    cfg.per_level_scale)


def refuse_other_backend(state_dict: dict, prefix: str, backend: str) -> None:
    """A checkpoint of the other hash-grid backend gets a message instead of a key mismatch."""
    keys = {"torch": "embeddings", "tinycudann": "encoding.params"}
    for other, key in keys.items():
        if other != backend and prefix + key in state_dict:
            raise UserError(f"this checkpoint's hash grid was trained with geometry.pos_encoding.backend={other}, "
                            f"but the config says {backend}; set it back to {other} (the two table layouts "
                            f"differ and are not converted)")


class TcnnHashGrid(nn.Module):
    """tinycudann's fused hash grid with the same keys; outputs float32."""

    def __init__(self, cfg):
        super().__init__()
        import tinycudann as tcnn
        self.encoding = tcnn.Encoding(3, {
            "otype": "HashGrid", "n_levels": cfg.n_levels, "n_features_per_level": cfg.n_features_per_level,
            "log2_hashmap_size": cfg.log2_hashmap_size, "base_resolution": cfg.base_resolution,
            "per_level_scale": cfg.per_level_scale})
        self.output_dim = self.encoding.n_output_dims

    def forward(self, x):
        return self.encoding(x).float()
