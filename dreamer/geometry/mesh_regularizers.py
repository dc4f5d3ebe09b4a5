"""Loss terms that keep an optimized triangle mesh (and the signed-distance grid it comes from) clean.

- normal consistency: 1 - cos of the angle between the two faces on each interior edge, so the
  prior cannot buy detail with a crumpled surface;
- Laplacian smoothness: each vertex's distance from the mean of its edge neighbours (the uniform
  Laplacian), in world units;
- signed-distance sign flips (DMTet's term): on every grid edge whose ends disagree in sign, each
  end's sign is pushed towards the other's (binary cross-entropy on the distance in cells), so that
  the surface does not break into specks and floating sheets where distances hover around zero.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..gather import gather_rows
from .tetrahedra import TET_EDGES


def unique_edges(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges (E, 2) with their lower vertex first, and each face corner's edge index (F, 3) (the
    edge from corner k to corner k + 1)."""
    pairs = torch.stack([faces, faces.roll(-1, dims=1)], -1).reshape(-1, 2)
    edges, inverse = torch.unique(torch.sort(pairs, -1).values, dim=0, return_inverse=True)
    return edges, inverse.reshape(-1, 3)


def normal_consistency(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(angle between face normals) over edges shared by exactly two faces."""
    if len(faces) < 2:
        return vertices.new_zeros(())
    a, b, c = gather_rows(vertices, faces).unbind(-2)
    normals = F.normalize(torch.cross(b - a, c - a, dim=-1), dim=-1)
    _, edge_of = unique_edges(faces)
    flat = edge_of.reshape(-1)
    order = torch.argsort(flat, stable=True)
    sorted_edges = flat[order]
    pair = sorted_edges[1:] == sorted_edges[:-1]  # consecutive entries of one edge: its two faces
    if not pair.any():
        return vertices.new_zeros(())
    first, second = order[:-1][pair] // 3, order[1:][pair] // 3
    return (1 - (gather_rows(normals, first) * gather_rows(normals, second)).sum(-1)).mean()


def laplacian_smoothness(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Mean over vertices of |v - mean of v's neighbours| (uniform weights)."""
    if len(faces) == 0:
        return vertices.new_zeros(())
    edges, _ = unique_edges(faces)
    i, j = torch.cat([edges[:, 0], edges[:, 1]]), torch.cat([edges[:, 1], edges[:, 0]])
    total = torch.zeros_like(vertices).index_add(0, i, gather_rows(vertices, j))
    count = torch.zeros(len(vertices), dtype=vertices.dtype, device=vertices.device).index_add(
        0, i, torch.ones_like(i, dtype=vertices.dtype))
    used = count > 0
    mean = total[used] / count[used, None]
    return (vertices[used] - mean).norm(dim=-1).mean()


def sdf_sign_flips(sdf: torch.Tensor, grid_edges: torch.Tensor, cell: float) -> torch.Tensor:
    """DMTet's regularizer: binary cross-entropy of each end's distance (in cells, as a logit)
    against the other end's sign, over the grid edges that cross the surface (0 if none do)."""
    s0, s1 = gather_rows(sdf, grid_edges[:, 0]), gather_rows(sdf, grid_edges[:, 1])
    cross = (s0 > 0) != (s1 > 0)
    if not cross.any():
        return sdf.new_zeros(())
    a, b = s0[cross] / cell, s1[cross] / cell
    return (F.binary_cross_entropy_with_logits(a, (b > 0).to(a.dtype))
            + F.binary_cross_entropy_with_logits(b, (a > 0).to(b.dtype))) / 2


def grid_edges(tets: torch.Tensor) -> torch.Tensor:
    """The unique edges (E, 2) of a tetrahedral grid."""
    pairs = tets[:, TET_EDGES.to(tets.device)].reshape(-1, 2)
    return torch.unique(torch.sort(pairs, -1).values, dim=0)
