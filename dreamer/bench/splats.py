"""`dreamer bench splats`: our tile-culled Gaussian rasterizer against dense all-pairs compositing.

Both composite the same projected Gaussians with the same rules (renderers/splat_raster.py), so
the ratio is what culling and early termination buy. The scene is the shape text-to-3D starts
from: Gaussians spread through a ball of radius 0.5 (cube-root radius), sized to their spacing,
opacity U(0.1, 0.9), seen from the training orbit (distance 2.4, fovy 40 degrees). One timing is
forward + backward of a random linear loss on the image.

The dense baseline is given its best form on a CPU: pixel chunks of about 2M pairs (cache-sized;
2-3x faster than one big tensor), with activation checkpointing once all pairs' activations would
not fit in a few GB, and past DENSE_BUDGET_PAIRS only its top rows are timed and the time scaled
to the whole image; the table says which.
"""
from __future__ import annotations

import math

import torch

from renderers import splat_raster as raster

from ..cameras import opencv_cameras, orbit
from .timing import median_seconds

DENSE_PLAIN_PAIRS = 2 ** 26  # up to this, dense keeps every chunk's activations (a few GB)
DENSE_CHUNK_PAIRS = 2 ** 21  # pairs per pixel chunk (the fastest measured: 1.8 s vs 5.7 s unchunked at 10k, 64²)
DENSE_BUDGET_PAIRS = 2 ** 29  # beyond this, time some chunks and extrapolate


def random_scene(n: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    means = direction * 0.5 * torch.rand(n, 1, generator=g) ** (1 / 3)
    spacing = (4 / 3 * math.pi * 0.5 ** 3 / n) ** (1 / 3)
    return {"means": means,
            "quats": torch.randn(n, 4, generator=g),
            "scales": 0.5 * spacing * torch.exp(0.3 * torch.randn(n, 3, generator=g)),
            "opacities": 0.1 + 0.8 * torch.rand(n, generator=g),
            "colors": torch.rand(n, 3, generator=g)}


def _project(scene: dict, viewmats, Ks, size: int):
    params = {k: v.clone().requires_grad_() for k, v in scene.items()}
    return raster.project(params["means"], params["quats"], params["scales"], params["opacities"],
                          params["colors"], viewmats, Ks, size, size)


def _backward(img, acc):
    weights = torch.randn(img.shape, generator=torch.Generator().manual_seed(0)).to(img.device)
    ((img * weights).sum() + acc.sum()).backward()


def _gsplat(scene: dict, viewmats, Ks, size: int):
    """gsplat's CUDA rasterizer on the same Gaussians (its own activations: log scales, logit opacities)."""
    import gsplat
    p = {k: v.clone().requires_grad_() for k, v in scene.items()}
    img, acc, _ = gsplat.rasterization(p["means"], p["quats"], p["scales"].log(), torch.logit(p["opacities"]),
                                       p["colors"], viewmats, Ks, size, size, packed=False)
    _backward(img, acc)


def _ours(scene: dict, viewmats, Ks, size: int, tile_size: int):
    _backward(*raster.composite_tiles(_project(scene, viewmats, Ks, size), size, size, tile_size))


def _dense(scene: dict, viewmats, Ks, size: int, rows: int | None = None):
    """Dense forward + backward over the whole image, or only its top `rows` rows."""
    s = _project(scene, viewmats, Ks, size)
    n = s.depths.shape[1]
    plain = rows is None and n * size * size * len(viewmats) <= DENSE_PLAIN_PAIRS
    chunk = max(1, DENSE_CHUNK_PAIRS // n)
    _backward(*raster.composite_dense(s, size, rows or size, pixel_chunk=chunk, checkpoint=not plain))


def run(counts=(1000, 10000, 50000), sizes=(64, 256), cameras: int = 1, repeats: int = 3,
        tile_size: int = 4, say=print, device: str = "cpu", gsplat: bool = False) -> list[dict]:
    """Seconds per forward + backward for each count and size; on a CUDA `device` with `gsplat`,
    gsplat's rasterizer is timed on the same scenes too."""
    rows, device = [], torch.device(device)
    for size in sizes:
        viewmats, Ks = (t.to(device) for t in opencv_cameras(orbit(cameras, 15.0, 2.4, 40.0, size)))
        for n in counts:
            scene = {k: v.to(device) for k, v in random_scene(n).items()}
            ours = median_seconds(lambda sc=scene, v=viewmats, k=Ks, sz=size: _ours(sc, v, k, sz, tile_size),
                                  repeats, device)
            pairs = n * size * size * cameras
            if pairs <= DENSE_BUDGET_PAIRS:
                dense = median_seconds(lambda sc=scene, v=viewmats, k=Ks, sz=size: _dense(sc, v, k, sz), 1, device)
                how = "chunked" if pairs <= DENSE_PLAIN_PAIRS else "chunked, checkpointed"
            else:
                rows_timed = max(1, min(size, (DENSE_BUDGET_PAIRS // (n * cameras)) // size))
                part = median_seconds(lambda sc=scene, v=viewmats, k=Ks, sz=size, r=rows_timed:
                                      _dense(sc, v, k, sz, r), 1, device)
                dense = part * size / rows_timed
                how = f"extrapolated from {rows_timed}/{size} rows"
            row = {"gaussians": n, "size": size, "ours_s": ours, "dense_s": dense, "speedup": dense / ours,
                   "dense": how}
            extra = ""
            if gsplat:
                row["gsplat_s"] = median_seconds(lambda sc=scene, v=viewmats, k=Ks, sz=size: _gsplat(sc, v, k, sz),
                                                 repeats, device)
                extra = f"  gsplat {row['gsplat_s']:8.4f} s"
            say(f"{n:6d} Gaussians {size:4d}px  ours {ours:8.3f} s  dense {dense:9.2f} s  "
                f"x{row['speedup']:.1f}  ({how}){extra}")
            rows.append(row)
    return rows


def table(rows: list[dict], cameras: int, tile_size: int, device: str = "cpu") -> str:
    where = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else \
        f"{torch.get_num_threads()} threads"
    title = (f"Gaussian rasterization, forward + backward, {cameras} camera(s), tiles {tile_size} px, "
             f"{where} ({torch.__version__})")
    has_gsplat = any("gsplat_s" in r for r in rows)
    lines = [title, "",
             "| Gaussians | image | ours (tile-culled) | dense all-pairs | speed-up | dense timing |"
             + (" gsplat | gsplat vs ours |" if has_gsplat else ""),
             "|---:|---:|---:|---:|---:|---|" + ("---:|---:|" if has_gsplat else "")]
    for r in rows:
        line = (f"| {r['gaussians']:,} | {r['size']}² | {r['ours_s']:.3f} s | {r['dense_s']:.2f} s | "
                f"{r['speedup']:.1f}× | {r['dense']} |")
        if has_gsplat:
            line += f" {r['gsplat_s']:.4f} s | {r['ours_s'] / r['gsplat_s']:.1f}× faster |"
        lines.append(line)
    return "\n".join(lines)
