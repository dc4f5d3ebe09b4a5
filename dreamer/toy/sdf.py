"""Signed distance functions of the primitives the toy catalogue is built from (torch, batched).

Each function takes points (N, 3) in the primitive's local frame and returns distances (N,).
Ellipsoids use the usual first-order bound, so sphere tracing takes slightly short steps.
"""
from __future__ import annotations

import math

import torch


def sphere(p, radius):
    return p.norm(dim=-1) - radius


def ellipsoid(p, radii):
    r = torch.as_tensor(radii, dtype=p.dtype)
    k0 = (p / r).norm(dim=-1)
    k1 = (p / (r * r)).norm(dim=-1).clamp_min(1e-9)
    return k0 * (k0 - 1.0) / k1


def box(p, half, rounding=0.0):
    q = p.abs() - (torch.as_tensor(half, dtype=p.dtype) - rounding)
    outside = q.clamp_min(0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp_max(0)
    return outside + inside - rounding


def cylinder(p, radius, half_height):
    """Capped cylinder along local y."""
    d = torch.stack([p[:, [0, 2]].norm(dim=-1) - radius, p[:, 1].abs() - half_height], -1)
    return d.max(dim=-1).values.clamp_max(0) + d.clamp_min(0).norm(dim=-1)


def cone(p, half_height, r_bottom, r_top):
    """Capped cone along local y: radius r_bottom at y = -h, r_top at y = +h."""
    h = half_height
    qx, qy = p[:, [0, 2]].norm(dim=-1), p[:, 1]
    k1 = torch.tensor([r_top, h], dtype=p.dtype)
    k2 = torch.tensor([r_top - r_bottom, 2 * h], dtype=p.dtype)
    cap_r = torch.where(qy < 0, torch.full_like(qx, r_bottom), torch.full_like(qx, r_top))
    ca = torch.stack([qx - torch.minimum(qx, cap_r), qy.abs() - h], -1)
    q = torch.stack([qx, qy], -1)
    s = ((k1 - q) @ k2 / (k2 @ k2)).clamp(0, 1)
    cb = q - k1 + k2 * s[:, None]
    sign = torch.where((cb[:, 0] < 0) & (ca[:, 1] < 0), -1.0, 1.0)
    return sign * torch.minimum((ca * ca).sum(-1), (cb * cb).sum(-1)).sqrt()


def torus(p, major, minor):
    """Torus in the local xz plane."""
    q = torch.stack([p[:, [0, 2]].norm(dim=-1) - major, p[:, 1]], -1)
    return q.norm(dim=-1) - minor


PRIMITIVES = {"sphere": sphere, "ellipsoid": ellipsoid, "box": box, "cylinder": cylinder,
              "cone": cone, "torus": torus}


def rotation_matrix(degrees_xyz) -> torch.Tensor:
    """Rotation R = Rz @ Ry @ Rx from Euler angles in degrees."""
    ax, ay, az = (math.radians(a) for a in degrees_xyz)
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return (rz @ ry @ rx).float()
