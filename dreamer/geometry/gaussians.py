"""3D Gaussians: the parameters (in gsplat's raw form) and how to query them as a field.

Parameters live in a ParameterDict with gsplat's keys and forms, so gsplat's DefaultStrategy can
grow and prune them in place: means, scales (log), quats (w, x, y, z; not normalised), opacities
(logit), sh0 (N, 1, 3) and shN (N, K - 1, 3) spherical-harmonic colour coefficients.

As a field (mesh export, texture baking, evaluation) the Gaussians give a density, the sum of
their kernels, each divided by sqrt(2 pi) times its mean scale, so that a line through a
Gaussian's centre integrates to about its opacity: the same optical-depth scale the NeRF's
density has, which lets the exporter's automatic isosurface level work on both.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import UserError

SH_C0 = 0.28209479177387814  # Y00: colour = 0.5 + SH_C0 * sh0
KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0


def logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return torch.log(p / (1 - p))


def mean_neighbour_distance(points: torch.Tensor, k: int = 3, chunk: int = 4096) -> torch.Tensor:
    """Mean distance to the k nearest other points (scale initialization, as in 3DGS)."""
    k = min(k, len(points) - 1)
    if k < 1:  # a lone point has no neighbours: a small fixed size
        return torch.full((len(points),), 0.01)
    out = []
    for block in points.split(chunk):
        d = torch.cdist(block, points)
        out.append(d.topk(k + 1, largest=False).values[:, 1:].mean(1))
    return torch.cat(out)


class GaussianField(nn.Module):
    color_channels = 3

    def __init__(self, cfg, seed: int = 0, start: tuple | None = None):
        """`start`: (points, colours) to place the Gaussians at (a previous stage's solid), instead
        of geometry.gaussians.init."""
        super().__init__()
        self.cfg = cfg.gaussians
        self.radius = cfg.radius
        self.sh_degree = self.cfg.sh_degree
        initial = self.from_points(*start, self.cfg.init_opacity) if start is not None else self._initial(seed)
        self.splats = nn.ParameterDict({k: nn.Parameter(v) for k, v in initial.items()})
        self._register_load_state_dict_pre_hook(self._resize_to_checkpoint)

    # -- initialization -----------------------------------------------------------------------------

    def _initial(self, seed: int) -> dict:
        c = self.cfg
        if c.init == "random":
            g = torch.Generator().manual_seed(seed)
            direction = nn.functional.normalize(torch.randn(c.num_points, 3, generator=g), dim=-1)
            points = direction * c.init_radius * torch.rand(c.num_points, 1, generator=g) ** (1 / 3)
            colours = torch.full((c.num_points, 3), 0.5) + 0.1 * torch.rand(c.num_points, 3, generator=g)
            return self.from_points(points, colours, c.init_opacity)
        if c.init == "ply":
            return read_splats_ply(c.init_path, self.sh_degree)
        raise UserError(f"geometry.gaussians.init={c.init} starts from a previous run: build the field "
                        f"through dreamer.representations.make_representation")

    def from_points(self, points: torch.Tensor, colours: torch.Tensor, opacity: float) -> dict:
        n = points.shape[0]
        scale = self.cfg.init_scale or None
        scales = torch.full((n,), scale) if scale else mean_neighbour_distance(points).clamp_min(1e-4)
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1.0
        return {"means": points.float(), "scales": scales.log()[:, None].repeat(1, 3),
                "quats": quats, "opacities": logit(torch.full((n,), opacity)),
                "sh0": rgb_to_sh0(colours.float())[:, None, :],
                "shN": torch.zeros(n, (self.sh_degree + 1) ** 2 - 1, 3)}

    def _resize_to_checkpoint(self, state_dict, prefix, *args, **kwargs):
        """Densification changes N: take the checkpoint's shapes before its values are copied in."""
        for key in KEYS:
            value = state_dict.get(f"{prefix}splats.{key}")
            if value is not None and value.shape != self.splats[key].shape:
                self.splats[key] = nn.Parameter(torch.empty_like(value, device=self.splats[key].device))

    # -- what the optimizer and renderer see -------------------------------------------------------------

    def parameter_groups(self) -> dict:
        return {k: [self.splats[k]] for k in KEYS if self.splats[k].numel()}

    @property
    def count(self) -> int:
        return self.splats["means"].shape[0]

    def activated(self) -> dict:
        s = self.splats
        return {"means": s["means"], "quats": s["quats"], "scales": torch.exp(s["scales"]),
                "opacities": torch.sigmoid(s["opacities"]),
                "colors": torch.cat([s["sh0"], s["shN"]], 1)}

    # -- as a field: density and colour at points -------------------------------------------------------------

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self._splat_sums(points)[0]

    def display_albedo(self, points: torch.Tensor) -> torch.Tensor:
        """View-independent colour (the DC term), kernel-weighted; grey where no Gaussian reaches."""
        weight, colour = self._splat_sums(points)[1:]
        return (colour + 0.5 * 1e-6) / (weight + 1e-6)[:, None]

    @torch.no_grad()
    def _splat_sums(self, points: torch.Tensor, cell: float | None = None):
        """Density, kernel weight and weighted colour at points. Kernels are truncated at 3 times
        their largest scale; each is summed only over the points in the grid cells its truncation
        box touches (a 3D version of the rasterizer's tile culling)."""
        from gsplat.cuda import _torch_impl as gs_ref
        a = self.activated()
        points = points.to(a["means"])
        n_pts = points.shape[0]
        out = [points.new_zeros(n_pts), points.new_zeros(n_pts), points.new_zeros(n_pts, 3)]
        if self.count == 0 or n_pts == 0:
            return out
        reach = 3 * a["scales"].max(1).values
        cell = cell or max(float(reach.median()) / 2, 1e-3)  # smaller cells: fewer wasted pairs, more ids
        lo = torch.floor((points.min(0).values - 1e-6) / cell)
        dims = (torch.floor(points.max(0).values / cell) - lo + 1).long()
        pcell = self._cell_id(torch.floor(points / cell) - lo, dims)
        order = torch.argsort(pcell)
        pcell_sorted = pcell[order]
        g_lo = (torch.floor((a["means"] - reach[:, None]) / cell) - lo).clamp_min(0)
        g_hi = torch.minimum(torch.floor((a["means"] + reach[:, None]) / cell) - lo, (dims - 1).to(lo))
        span = (g_hi - g_lo + 1).clamp_min(0).long()
        gid, cid = _expand_boxes(g_lo.long(), span, dims)
        first = torch.searchsorted(pcell_sorted, cid)
        count = torch.searchsorted(pcell_sorted, cid, right=True) - first
        owner = torch.repeat_interleave(torch.arange(len(gid), device=count.device), count)
        local = torch.arange(len(owner), device=count.device) - (torch.cumsum(count, 0) - count)[owner]
        pid, gid = order[first[owner] + local], gid[owner]
        _, precis = gs_ref._quat_scale_to_covar_preci(a["quats"], a["scales"], compute_covar=False)
        colour = (0.5 + SH_C0 * a["colors"][:, 0]).clamp_min(0.0)
        norm = a["opacities"] / (math.sqrt(2 * math.pi) * a["scales"].prod(1) ** (1 / 3))
        for block in torch.arange(len(pid), device=pid.device).split(1 << 22):
            p, g = pid[block], gid[block]
            d = points[p] - a["means"][g]
            kernel = torch.exp(-0.5 * torch.einsum("ni,nij,nj->n", d, precis[g], d))
            kernel = kernel * ((d * d).sum(1) <= reach[g] ** 2)  # truncated at 3 sigma_max exactly
            out[0].index_add_(0, p, norm[g] * kernel)
            w = a["opacities"][g] * kernel
            out[1].index_add_(0, p, w)
            out[2].index_add_(0, p, w[:, None] * colour[g])
        return out

    @staticmethod
    def _cell_id(ijk: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
        ijk = ijk.long()
        return (ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2]


def _expand_boxes(lo: torch.Tensor, span: torch.Tensor, dims: torch.Tensor):
    """(Gaussian, cell) pairs for every cell in each Gaussian's box of cells."""
    n = span.prod(1)
    gid = torch.repeat_interleave(torch.arange(len(n), device=n.device), n)
    local = torch.arange(len(gid), device=n.device) - (torch.cumsum(n, 0) - n)[gid]
    sy, sz = span[gid, 1], span[gid, 2]
    ijk = lo[gid] + torch.stack([local // (sy * sz), (local // sz) % sy, local % sz], 1)
    return gid, GaussianField._cell_id(ijk, dims)


# -- the 3DGS PLY file ---------------------------------------------------------------------------------

def read_splats_ply(path, sh_degree: int) -> dict:
    """Raw parameters from a 3DGS PLY (ours, Inria's, gsplat's): normals are ignored, higher SH
    bands than sh_degree dropped, missing ones zero."""
    from plyfile import PlyData
    try:
        v = PlyData.read(str(path))["vertex"]
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"cannot read Gaussians from {path} ({exc}); give a 3DGS .ply file "
                        f"(x, y, z, f_dc_*, opacity, scale_*, rot_*)") from None
    names = v.data.dtype.names
    need = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [k for k in need if k not in names]
    if missing:
        raise UserError(f"{path} is not a 3DGS PLY: it lacks {', '.join(missing)}")
    col = lambda *keys: torch.from_numpy(np.stack([np.asarray(v[k], np.float32) for k in keys], -1))
    rest = sorted((k for k in names if k.startswith("f_rest_")), key=lambda k: int(k[7:]))
    k_file = len(rest) // 3  # bases beyond DC, per channel
    k_want = (sh_degree + 1) ** 2 - 1
    shN = torch.zeros(len(v.data), k_want, 3)
    if k_file:
        file_rest = col(*rest).reshape(-1, 3, k_file).transpose(1, 2)  # channel-major on disk
        shN[:, :min(k_file, k_want)] = file_rest[:, :k_want]
    return {"means": col("x", "y", "z"), "scales": col("scale_0", "scale_1", "scale_2"),
            "quats": col("rot_0", "rot_1", "rot_2", "rot_3"), "opacities": col("opacity")[:, 0],
            "sh0": col("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :], "shN": shN}
