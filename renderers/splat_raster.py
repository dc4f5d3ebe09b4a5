"""Rasterizing 3D Gaussians in pure PyTorch with gsplat's semantics (the CPU path).

gsplat's `rasterization` needs CUDA kernels for compositing; everywhere else this module does the
same maths: EWA projection and spherical harmonics come from gsplat's own PyTorch reference
(`gsplat.cuda._torch_impl`, private but pinned to 1.5.3, so the two paths cannot drift), and the
compositing is ours:

* each Gaussian is culled to the tiles its 3.33-sigma box touches (gsplat's radius rule);
* (Gaussian, tile) pairs are sorted by tile, then depth, and every pair is evaluated on its tile's
  pixels at once, so the cost follows the footprints rather than Gaussians x pixels;
* transmittance is a segmented cumulative sum of log(1 - alpha) per tile (float64, so long tiles
  keep their precision), with gsplat's rules: alpha = min(0.999, o exp(-sigma)), skipped below
  1/255, and a pixel stops (exclusively) once T would fall to 1e-4;
* early termination saves work: a no-grad pass finds the pairs that reach at least one live pixel,
  and only those are composited again with autograd.

`composite_dense` evaluates every Gaussian at every pixel: the brute-force reference for tests and
the baseline for `dreamer bench splats`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from gsplat.cuda import _torch_impl as gs_ref

from dreamer.gather import gather_pairs, gather_rows

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4
LOG_T_MIN = math.log(T_MIN)


@dataclass
class Splats2D:
    """Gaussians as one batch of cameras sees them; C cameras, N Gaussians, D channels."""
    means2d: torch.Tensor  # (C, N, 2) pixels, origin at the image's top-left corner
    conics: torch.Tensor  # (C, N, 3) upper triangle of the inverse 2D covariance
    depths: torch.Tensor  # (C, N) camera-space z
    radii: torch.Tensor  # (C, N, 2) int, 0 where not visible
    opacities: torch.Tensor  # (C, N), antialiasing compensation applied
    colors: torch.Tensor  # (C, N, D)


def camera_centres(viewmats: torch.Tensor) -> torch.Tensor:
    return torch.linalg.inv(viewmats)[:, :3, 3]


def project(means, quats, scales, opacities, colors, viewmats, Ks, width: int, height: int,
            sh_degree: int | None = None, near_plane: float = 0.01, far_plane: float = 1e10,
            eps2d: float = 0.3, rasterize_mode: str = "classic") -> Splats2D:
    """gsplat's projection stage. scales are linear, opacities post-sigmoid, viewmats OpenCV
    world-to-camera; colors are (N, D) features or (N, K, 3) SH coefficients with sh_degree."""
    covars, _ = gs_ref._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, comp = gs_ref._fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane,
        far_plane=far_plane, calc_compensations=rasterize_mode == "antialiased")
    C = viewmats.shape[0]
    opac = opacities[None].expand(C, -1)
    if comp is not None:
        opac = opac * comp
    if sh_degree is None:
        feats = colors[None].expand(C, -1, -1) if colors.dim() == 2 else colors
    else:
        dirs = means[None] - camera_centres(viewmats)[:, None]
        sh = colors[None].expand(C, -1, -1, -1)
        # Inria's and gsplat's convention: a DC coefficient c is the colour 0.5 + Y00 c
        feats = (gs_ref._spherical_harmonics(sh_degree, dirs, sh) + 0.5).clamp_min(0.0)
    return Splats2D(means2d, conics, depths, radii, opac, feats)


def _alpha_at(s: Splats2D, cam, gid, px, py, width: int, height: int) -> torch.Tensor:
    """alpha of Gaussian gid seen by camera cam at pixel centres (px, py): (P, Q); 0 where skipped."""
    m, q = gather_pairs(s.means2d, cam, gid), gather_pairs(s.conics, cam, gid)
    dx, dy = m[:, :1] - px, m[:, 1:] - py
    sigma = 0.5 * (q[:, :1] * dx * dx + q[:, 2:] * dy * dy) + q[:, 1:2] * dx * dy
    alpha = (gather_pairs(s.opacities, cam, gid)[:, None] * torch.exp(-sigma)).clamp_max(ALPHA_MAX)
    valid = (sigma >= 0) & (alpha >= ALPHA_MIN) & (px < width) & (py < height)
    return torch.where(valid, alpha, torch.zeros_like(alpha))


# -- tile-culled compositing -------------------------------------------------------------------------

@dataclass
class TilePairs:
    """(camera, Gaussian, tile) triples sorted by tile, then depth."""
    cam: torch.Tensor
    gid: torch.Tensor
    tx: torch.Tensor
    ty: torch.Tensor
    tile: torch.Tensor  # global tile id (camera-major)

    def select(self, keep: torch.Tensor) -> TilePairs:
        return TilePairs(*(getattr(self, k)[keep] for k in ("cam", "gid", "tx", "ty", "tile")))


def tile_pairs(s: Splats2D, width: int, height: int, tile_size: int) -> TilePairs:
    N = s.depths.shape[1]
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    m, r = s.means2d.detach(), s.radii.to(s.means2d.dtype)
    lo = torch.floor((m - r) / tile_size).long()
    hi = torch.ceil((m + r) / tile_size).long()
    limit = torch.tensor([tw, th], device=m.device)
    lo, hi = torch.minimum(lo.clamp_min(0), limit), torch.minimum(hi.clamp_min(0), limit)
    span = hi - lo
    count = span.prod(-1) * (s.radii > 0).all(-1)
    cam, gid = count.nonzero(as_tuple=True)
    n = count[cam, gid]
    owner = torch.repeat_interleave(torch.arange(len(cam), device=m.device), n)
    local = torch.arange(len(owner), device=m.device) - (torch.cumsum(n, 0) - n)[owner]
    cam, gid = cam[owner], gid[owner]
    width_in_tiles = span[cam, gid, 0]
    tx = lo[cam, gid, 0] + local % width_in_tiles
    ty = lo[cam, gid, 1] + local // width_in_tiles
    tile = (cam * th + ty) * tw + tx
    depth_rank = torch.argsort(torch.argsort(s.depths.detach(), dim=1), dim=1)
    order = torch.argsort(tile * N + depth_rank[cam, gid])
    return TilePairs(cam[order], gid[order], tx[order], ty[order], tile[order])


def _segment_log_transmittance(log1m: torch.Tensor, tile: torch.Tensor):
    """Inclusive and exclusive log T along each tile's depth-sorted run of pairs."""
    _, counts = torch.unique_consecutive(tile, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    cs = torch.cumsum(log1m.double(), 0)
    before = gather_rows(torch.cat([cs.new_zeros((1,) + cs.shape[1:]), cs]), starts)  # cs[start - 1], 0 at 0
    incl = cs - before
    return incl, incl - log1m.double()


def _pixel_grid(pairs: TilePairs, tile_size: int, dtype):
    o = torch.arange(tile_size, device=pairs.tx.device)
    oy, ox = torch.meshgrid(o, o, indexing="ij")
    ix = pairs.tx[:, None] * tile_size + ox.reshape(1, -1)  # (P, tile_size^2)
    iy = pairs.ty[:, None] * tile_size + oy.reshape(1, -1)
    return ix, iy, ix.to(dtype) + 0.5, iy.to(dtype) + 0.5


def composite_tiles(s: Splats2D, width: int, height: int, tile_size: int = 4,
                    backgrounds: torch.Tensor | None = None, prune: bool = True):
    """Front-to-back compositing over culled tiles: colours (C, H, W, D) and alphas (C, H, W, 1)."""
    C, _, D = s.colors.shape
    pairs = tile_pairs(s, width, height, tile_size)
    # without autograd there is no second pass to save: prune only when gradients are taken
    prune = prune and len(pairs.cam) > 0 and torch.is_grad_enabled()
    if prune:
        with torch.no_grad():
            _, _, px, py = _pixel_grid(pairs, tile_size, s.means2d.dtype)
            alpha = _alpha_at(s, pairs.cam, pairs.gid, px, py, width, height)
            incl, _ = _segment_log_transmittance(torch.log1p(-alpha), pairs.tile)
            live = (alpha > 0) & (incl > LOG_T_MIN)
            pairs = pairs.select(live.any(1))
            live = live[live.any(1)]
    ix, iy, px, py = _pixel_grid(pairs, tile_size, s.means2d.dtype)
    alpha = _alpha_at(s, pairs.cam, pairs.gid, px, py, width, height)
    log1m = torch.log1p(-alpha)
    incl, excl = _segment_log_transmittance(log1m, pairs.tile)
    if not prune:
        live = incl > LOG_T_MIN
    weight = alpha * torch.exp(excl).to(alpha.dtype) * live
    pixel = (pairs.cam[:, None] * height + iy.clamp_max(height - 1)) * width + ix.clamp_max(width - 1)
    pixel = pixel.reshape(-1)  # out-of-image pixels carry weight 0
    feats = gather_pairs(s.colors, pairs.cam, pairs.gid)
    rgb = s.colors.new_zeros((C * height * width, D)).index_add(
        0, pixel, (weight[..., None] * feats[:, None, :]).reshape(-1, D))
    acc = s.colors.new_zeros(C * height * width).index_add(0, pixel, weight.reshape(-1))
    return _finish(rgb.reshape(C, height, width, D), acc.reshape(C, height, width, 1), backgrounds)


def _finish(rgb, acc, backgrounds):
    if backgrounds is not None:
        rgb = rgb + (1 - acc) * backgrounds[:, None, None, :]
    return rgb, acc


# -- the brute-force reference ---------------------------------------------------------------------------

def composite_dense(s: Splats2D, width: int, height: int, backgrounds=None,
                    pixel_chunk: int | None = None, checkpoint: bool = False):
    """Every Gaussian at every pixel, depth-sorted, with a plain cumulative product. Chunks of
    pixels (optionally recomputed in backward) bound its memory, never its work."""
    C, _, D = s.colors.shape
    jj, ii = torch.meshgrid(torch.arange(height, device=s.depths.device),
                            torch.arange(width, device=s.depths.device), indexing="ij")
    px = ii.reshape(1, -1).to(s.means2d.dtype) + 0.5
    py = jj.reshape(1, -1).to(s.means2d.dtype) + 0.5
    chunk = pixel_chunk or px.shape[1]
    rgbs, accs = [], []
    for c in range(C):
        order = torch.argsort(s.depths[c].detach())
        order = order[(s.radii[c, order] > 0).all(-1)]
        for a in range(0, px.shape[1], chunk):
            fn = lambda x, y, c_=c, o_=order: _dense_block(s, c_, o_, x, y, width, height)
            args = (px[:, a:a + chunk], py[:, a:a + chunk])
            rgb, acc = torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False) if checkpoint else fn(*args)
            rgbs.append(rgb)
            accs.append(acc)
    rgb = torch.cat(rgbs).reshape(C, height, width, D)
    acc = torch.cat(accs).reshape(C, height, width, 1)
    return _finish(rgb, acc, backgrounds)


def _dense_block(s, c: int, order, px, py, width, height):
    alpha = _alpha_at(s, torch.full_like(order, c), order, px, py, width, height)  # (N, Q)
    t_incl = torch.cumprod(1 - alpha, 0)
    t_excl = torch.cat([torch.ones_like(alpha[:1]), t_incl[:-1]])
    weight = alpha * t_excl * (t_incl > T_MIN)
    return weight.T @ s.colors[c, order], weight.sum(0)[:, None]


# -- gsplat-compatible entry point ---------------------------------------------------------------------------

def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width: int, height: int,
                  near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3,
                  sh_degree: int | None = None, backgrounds=None, render_mode: str = "RGB",
                  rasterize_mode: str = "classic", tile_size: int = 4, dense: bool = False):
    """gsplat.rasterization's contract (unpacked, pinhole) on any device:
    returns (render_colors (C, H, W, X), render_alphas (C, H, W, 1), meta)."""
    if render_mode not in ("RGB", "RGB+D", "RGB+ED", "D", "ED"):
        raise ValueError(f"render_mode {render_mode!r} is not one of RGB, RGB+D, RGB+ED, D, ED")
    s = project(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree,
                near_plane, far_plane, eps2d, rasterize_mode)
    meta = {"means2d": s.means2d, "radii": s.radii, "depths": s.depths, "conics": s.conics,
            "opacities": s.opacities, "width": width, "height": height, "n_cameras": viewmats.shape[0],
            "tile_size": tile_size, "camera_ids": None, "gaussian_ids": None}  # None: unpacked, as gsplat
    feats, bg = s.colors, backgrounds
    if render_mode != "RGB":
        depth = s.depths[..., None]
        feats = depth if render_mode in ("D", "ED") else torch.cat([feats, depth], -1)
        if bg is not None:
            zeros = bg.new_zeros(bg.shape[0], 1)
            bg = zeros if render_mode in ("D", "ED") else torch.cat([bg, zeros], -1)
    s.colors = feats
    if dense:
        out, acc = composite_dense(s, width, height, bg)
    else:
        out, acc = composite_tiles(s, width, height, tile_size, bg)
    if render_mode.endswith("ED"):
        out = torch.cat([out[..., :-1], out[..., -1:] / acc.clamp_min(1e-10)], -1)
    return out, acc, meta
