"""Exact renders of toy objects by sphere tracing their signed distance field.

The shading model is the one the NeRF renderer uses (ambient + diffuse from a point light), so a
perfect reconstruction can reproduce the references pixel for pixel.
"""
from __future__ import annotations

import torch

from ..cameras import CameraBatch, get_rays, sphere_interval

BOUND_RADIUS = 1.0


@torch.no_grad()
def trace(distance_fn, origins, dirs, max_iters=96, eps=1e-3, step_scale=0.9):
    """Sphere-trace rays (N, 3). Returns hit mask (N,) and hit points (N, 3)."""
    t_near, t_far, inside = sphere_interval(origins, dirs, BOUND_RADIUS)
    t = t_near.clone()
    hit = torch.zeros_like(inside)
    active = inside.nonzero().squeeze(-1)
    for _ in range(max_iters):
        if active.numel() == 0:
            break
        p = origins[active] + dirs[active] * t[active, None]
        d = distance_fn(p)
        done = d < eps
        hit[active[done]] = True
        t[active] += torch.where(done, torch.zeros_like(d), d * step_scale)
        keep = (~done) & (t[active] < t_far[active])
        active = active[keep]
    return hit, origins + dirs * t[:, None]


def sdf_normals(distance_fn, points, h=1e-3):
    offsets = torch.eye(3, dtype=points.dtype) * h
    grads = [distance_fn(points + o) - distance_fn(points - o) for o in offsets]
    return torch.nn.functional.normalize(torch.stack(grads, -1), dim=-1)


def shade(albedo, normals, points, light_pos, ambient, diffuse):
    light_dir = torch.nn.functional.normalize(light_pos - points, dim=-1)
    lambert = (normals * light_dir).sum(-1, keepdim=True).clamp_min(0)
    return albedo * (ambient + diffuse * lambert)


@torch.no_grad()
def render_object(obj, cams: CameraBatch, background=(1.0, 1.0, 1.0), ambient=0.3, diffuse=0.7,
                  supersample: int = 1, chunk_images: int = 64):
    """RGB (B, H, W, 3) in [0, 1] and coverage (B, H, W) in [0, 1] of a toy object.

    `supersample` renders at k times the resolution and averages, giving anti-aliased edges.
    """
    rgbs, masks = [], []
    for start in range(0, len(cams), chunk_images):
        sub = cams.subset(slice(start, start + chunk_images))
        sub.height, sub.width = cams.height * supersample, cams.width * supersample
        rgb, mask = _render_chunk(obj, sub, background, ambient, diffuse)
        if supersample > 1:
            pool = lambda x: torch.nn.functional.avg_pool2d(x, supersample)  # noqa: E731
            rgb = pool(rgb.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            mask = pool(mask[:, None])[:, 0]
        rgbs.append(rgb)
        masks.append(mask)
    return torch.cat(rgbs), torch.cat(masks)


def _render_chunk(obj, cams, background, ambient, diffuse):
    origins, dirs = get_rays(cams)
    B, H, W, _ = dirs.shape
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    hit, pts = trace(obj.distance, o, d)
    rgb = torch.tensor(background, dtype=torch.float32).expand(o.shape[0], 3).clone()
    idx = hit.nonzero().squeeze(-1)
    if idx.numel():
        p = pts[idx]
        _, albedo = obj.query(p)
        normals = sdf_normals(obj.distance, p)
        light = cams.light_pos[:, None, None, :].expand(B, H, W, 3).reshape(-1, 3)[idx]
        rgb[idx] = shade(albedo, normals, p, light, ambient, diffuse)
    return rgb.reshape(B, H, W, 3), hit.reshape(B, H, W).float()
