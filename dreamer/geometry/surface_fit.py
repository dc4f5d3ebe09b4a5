"""Fitting a deformable tetrahedral grid to a given surface: where the mesh stage starts.

The mesh stage starts from the surface the coarse run's own export writes (marching cubes of its
cleaned solid at export.resolution), not from its density sampled at the tet lattice: a soft
density is not a distance, so linear interpolation between lattice points misplaces the surface,
and a lattice of 33^3 points loses whatever is thinner than a cell. Two steps:

1. signed distances at the lattice points to that surface: the distance to the nearest of many
   surface samples, negative where the point lies behind that sample's face (a k-d tree: exact
   point-to-triangle distances for 36k-275k lattice points take minutes in trimesh);
2. a short Chamfer fit of the signed distances and the offsets to the surface's samples, so that
   surface vertices land on the surface instead of on a chord across a cell, and the signs can
   reconnect a part the lattice alone would cut off (a thin neck).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import trimesh
from scipy import ndimage
from scipy.spatial import cKDTree

from ..gather import gather_rows
from .mesh_regularizers import normal_consistency


def surface_samples(mesh: trimesh.Trimesh, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n points spread over the surface by area, and the outward normal of the face each lies on."""
    points, face = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points, np.float64), np.asarray(mesh.face_normals[face], np.float64)


def signed_distance(points: np.ndarray, samples: np.ndarray, normals: np.ndarray, band: float = np.inf) -> np.ndarray:
    """Distance from each point to its nearest sample, negative where it lies behind the sample's face;
    NaN for points farther than `band` (not looked up). Accurate to about the samples' spacing, and in
    sign wherever the surface is smooth at that scale."""
    distance, nearest = cKDTree(samples).query(points, distance_upper_bound=band)
    near = np.isfinite(distance)
    behind = np.einsum("ij,ij->i", points[near] - samples[nearest[near]], normals[nearest[near]]) < 0
    sdf = np.full(len(points), np.nan)
    sdf[near] = np.where(behind, -distance[near], distance[near])
    return sdf


def lattice_signed_distance(samples: np.ndarray, normals: np.ndarray, points: np.ndarray, shape: tuple,
                            band: float) -> np.ndarray:
    """signed_distance at the points of a lattice (in C order of `shape`), clamped to +-band. Only
    points within the band query the samples (all 2.1M lattice points of resolution 128 took 8
    minutes); every connected piece of the lattice beyond the band lies wholly inside or outside,
    and takes the sign of the in-band points that border it."""
    sdf = signed_distance(points, samples, normals, band)
    near = np.isfinite(sdf)
    pieces, count = ndimage.label(~near.reshape(shape))
    if count:
        bordering = ndimage.grey_dilation(pieces, size=3).reshape(-1)  # a far piece's label, next to it
        edge = near & (bordering > 0)
        inside = np.bincount(bordering[edge], weights=(sdf[edge] < 0).astype(float), minlength=count + 1)
        total = np.bincount(bordering[edge], minlength=count + 1)
        far_inside = inside > total / 2
        flat = pieces.reshape(-1)
        sdf[flat > 0] = np.where(far_inside[flat[flat > 0]], -band, band)
    return sdf


def points_on_faces(vertices: torch.Tensor, faces: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n points spread over a triangle mesh by area, differentiable in the vertices."""
    a, b, c = gather_rows(vertices, faces).unbind(-2)
    area = torch.cross(b - a, c - a, dim=-1).norm(dim=-1).detach()
    pick = torch.multinomial(area + 1e-12, n, replacement=True, generator=generator)
    u, w = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    fold = u + w > 1  # a point of the parallelogram's far half, reflected into the triangle
    u, w = torch.where(fold, 1 - u, u)[:, None], torch.where(fold, 1 - w, w)[:, None]
    a, b, c = a[pick], b[pick], c[pick]
    return a + u * (b - a) + w * (c - a)


def chamfer_fit(surface: Callable[[], tuple[torch.Tensor, torch.Tensor]], parameters: list[dict],
                target: np.ndarray, steps: int, seed: int, samples: int = 20000,
                smoothness: float = 0.01, say: Callable[[int], None] | None = None) -> None:
    """Adam on `parameters` (param groups with their lr) so that surface() -> (vertices, faces) meets
    the target points: the symmetric mean nearest-neighbour distance between `samples` points of
    each, plus a little normal consistency so the fit does not crumple."""
    optimizer = torch.optim.Adam(parameters)
    goal = torch.from_numpy(target).float()
    goal_tree = cKDTree(target)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        vertices, faces = surface()
        if len(faces) == 0:
            break
        ours = points_on_faces(vertices, faces, samples, generator)
        _, nearest_goal = goal_tree.query(ours.detach().numpy())
        theirs = goal[torch.randint(len(goal), (samples,), generator=generator)]
        _, nearest_ours = cKDTree(ours.detach().numpy()).query(theirs.numpy())
        fit = (ours - goal[nearest_goal]).norm(dim=-1).mean() + (theirs - ours[nearest_ours]).norm(dim=-1).mean()
        loss = fit + smoothness * normal_consistency(vertices, faces)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if say is not None:
            say(step)
