"""A deformable tetrahedral grid and differentiable marching tetrahedra (DMTet's surface step).

The grid: (res + 1)^3 lattice points over [-radius, radius]^3, each cube cut into six tetrahedra
around its main diagonal (the Kuhn triangulation: one tetrahedron per ordering of the three axes),
which conforms across neighbouring cubes, so the extracted surface is closed wherever it does not
reach the grid's boundary. Each vertex carries a signed distance (negative inside) and a
bounded offset of at most half a cell along each axis (tanh), as DMTet deforms its grid.

Marching tetrahedra: a tetrahedron whose corners change sign holds one triangle (one corner
apart from the other three) or a quad of two (two and two). Surface vertices sit where the signed
distance interpolates linearly to zero along each crossed edge, so they are differentiable in
the signed distances and in the offsets; each crossed edge gives one vertex shared by the
triangles around it. Triangles are wound counter-clockwise seen from outside.
"""
from __future__ import annotations

import itertools

import torch

from ..gather import gather_rows


def tet_grid(res: int, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Lattice points ((res + 1)^3, 3) and tetrahedra (6 res^3, 4) as indices into them."""
    axis = torch.linspace(-radius, radius, res + 1)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    n = res + 1
    corner = torch.stack(torch.meshgrid(*[torch.arange(res)] * 3, indexing="ij"), -1).reshape(-1, 3)
    index = lambda c: (c[:, 0] * n + c[:, 1]) * n + c[:, 2]  # noqa: E731
    unit = torch.eye(3, dtype=torch.long)
    tets = []
    for a, b, _ in itertools.permutations(range(3)):
        path = [corner, corner + unit[a], corner + unit[a] + unit[b], corner + 1]
        tets.append(torch.stack([index(c) for c in path], -1))
    return points, torch.cat(tets)


def deformed(points: torch.Tensor, offsets: torch.Tensor, res: int, radius: float = 1.0) -> torch.Tensor:
    """Grid points moved by offsets bounded to half a cell along each axis."""
    return points + torch.tanh(offsets) * (radius / res)


TET_EDGES = torch.tensor([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])


def marching_tetrahedra(positions: torch.Tensor, sdf: torch.Tensor, tets: torch.Tensor,
                        lattice: torch.Tensor | None = None):
    """The zero level set of `sdf` (V,) over the tetrahedra: vertices (M, 3) and faces (K, 3).
    `lattice`: the grid points before their offsets. Each face is wound outward as it would be on
    them: offsets can squash a tetrahedron flat or turn it inside out, and a face's outward side
    tested on the moved points then comes out wrong (a mesh-stage duck had 22 edges whose two faces
    ran the same way)."""
    inside = sdf < 0
    count = inside[tets].sum(-1)
    crossing = (count > 0) & (count < 4)
    tets = tets[crossing]
    if len(tets) == 0:
        return positions.new_zeros((0, 3)), torch.zeros((0, 3), dtype=torch.long, device=positions.device)
    # every tet edge whose ends differ in sign becomes one surface vertex, shared by its tets
    ends = tets[:, TET_EDGES]  # (T, 6, 2)
    ends = torch.sort(ends, -1).values
    cut = inside[ends[..., 0]] != inside[ends[..., 1]]  # (T, 6)
    edges, slot = torch.unique(ends[cut], dim=0, return_inverse=True)
    s0, s1 = gather_rows(sdf, edges[:, 0]), gather_rows(sdf, edges[:, 1])
    # A distance of exactly 0 at a corner would put the crossings of all its edges on the corner
    # itself, making zero-area triangles that have no orientation: keep them a hair inside the edge.
    w = (s0 / (s0 - s1)).clamp(1e-3, 1 - 1e-3)[:, None]
    on_edges = lambda points: gather_rows(points, edges[:, 0]) * (1 - w) + gather_rows(points, edges[:, 1]) * w
    vertices = on_edges(positions)
    vertex_of = torch.full(cut.shape, -1, dtype=torch.long, device=positions.device)
    vertex_of[cut] = slot
    faces = torch.cat([_one_apart(tets, inside, vertex_of), _two_and_two(tets, inside, vertex_of)])
    if lattice is None:
        return vertices, _wind_outward(vertices, faces, positions, tets, inside)
    with torch.no_grad():
        return vertices, _wind_outward(on_edges(lattice), faces, lattice, tets, inside)


def _edge_slot(i, j):
    """Index into TET_EDGES of the edge between tet corners i and j (tensors of corner numbers)."""
    lo, hi = torch.minimum(i, j), torch.maximum(i, j)
    table = torch.full((4, 4), -1, dtype=torch.long)
    for k, (a, b) in enumerate(TET_EDGES.tolist()):
        table[a, b] = k
    return table.to(lo.device)[lo, hi]


def _one_apart(tets, inside, vertex_of):
    """Tets with one corner on its own side: the triangle on the three edges from it."""
    corners = inside[tets]
    count = corners.sum(-1)
    rows = torch.nonzero((count == 1) | (count == 3)).flatten()
    if len(rows) == 0:
        return torch.zeros((0, 3), dtype=torch.long, device=tets.device)
    lone_inside = count[rows] == 1
    lone = torch.where(lone_inside, corners[rows].long().argmax(-1), (~corners[rows]).long().argmax(-1))
    others = torch.stack([(lone + k) % 4 for k in (1, 2, 3)], -1)
    slots = _edge_slot(lone[:, None].expand_as(others), others)
    return torch.gather(vertex_of[rows], 1, slots)


def _two_and_two(tets, inside, vertex_of):
    """Tets split two and two: the quad on the four crossed edges, as two triangles."""
    corners = inside[tets]
    rows = torch.nonzero(corners.sum(-1) == 2).flatten()
    if len(rows) == 0:
        return torch.zeros((0, 3), dtype=torch.long, device=tets.device)
    order = torch.argsort(corners[rows].long(), dim=-1, descending=True, stable=True)  # inside corners first
    a, b, c, d = order.unbind(-1)
    ring = torch.stack([_edge_slot(a, c), _edge_slot(a, d), _edge_slot(b, d), _edge_slot(b, c)], -1)
    v = torch.gather(vertex_of[rows], 1, ring)  # around the quad, in order
    return torch.cat([v[:, [0, 1, 2]], v[:, [0, 2, 3]]])


def _wind_outward(vertices, faces, positions, tets, inside):
    """Flip the triangles that face their tetrahedron's inside corners: a triangle separates the
    inside corners of the tetrahedron it came from from the outside ones, so its normal must point
    away from their centroid."""
    if len(faces) == 0:
        return faces
    with torch.no_grad():
        corners = inside[tets]
        count = corners.sum(-1)
        one = torch.nonzero((count == 1) | (count == 3)).flatten()
        two = torch.nonzero(count == 2).flatten()
        source = torch.cat([one, two, two])  # the tet of each face, in the order the faces were made
        pts = positions[tets[source]]
        ins = corners[source].to(pts.dtype)[..., None]
        inside_centre = (pts * ins).sum(1) / ins.sum(1)
        p = vertices[faces]
        normal = torch.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], dim=-1)
        flip = (normal * (inside_centre - p.mean(1))).sum(-1) > 0
    return torch.where(flip[:, None], faces[:, [0, 2, 1]], faces)
