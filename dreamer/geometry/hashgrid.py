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
        step = torch.arange(2, device=base.device)  # made there: no host-to-device copy per call
        ax = [base[:, i:i + 1] + step for i in range(3)]  # (N, 2) per axis
        if (res + 1) ** 3 <= self.table_size:
            idx = (ax[0] * (res + 1) ** 2)[:, :, None, None] + (ax[1] * (res + 1))[:, None, :, None] \
                + ax[2][:, None, None, :]
        else:
            idx = ((ax[0] * PRIMES[0])[:, :, None, None] ^ (ax[1] * PRIMES[1])[:, None, :, None]
                   ^ (ax[2] * PRIMES[2])[:, None, None, :]) % size
        return idx.reshape(-1, 8) + self.offsets[level]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3) in [0, 1] -> features (N, n_levels * n_features)."""
        x = x.clamp(0, 1)
        feats = []
        for level, res in enumerate(self.resolutions):
            pos = x * res
            base = pos.floor().long().clamp_max(res - 1)
            frac = pos - base
            wx, wy, wz = (torch.stack([1 - frac[:, i], frac[:, i]], -1) for i in range(3))
            w = (wx[:, :, None, None] * wy[:, None, :, None] * wz[:, None, None, :]).reshape(-1, 8)
            emb = gather_rows(self.embeddings, self._corner_index(level, base))  # (N, 8, F)
            feats.append(torch.einsum("nc,ncf->nf", w, emb))
        return torch.cat(feats, -1)


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
