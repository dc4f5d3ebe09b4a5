"""The tetrahedral grid and marching tetrahedra (dreamer/geometry/tetrahedra.py) on analytic
signed distances."""
import math

import torch
import trimesh

import numpy as np
from scipy import ndimage

from dreamer.export.solid import closed, surface_genus
from dreamer.geometry.tetrahedra import deformed, marching_tetrahedra, tet_grid
from dreamer.topology import lattice_euler


def _volumes(points, tets):
    p = points[tets]
    return torch.linalg.det(torch.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]], 1)) / 6


def test_the_grid_fills_the_cube_with_six_tetrahedra_per_cell_that_conform():
    res, radius = 5, 1.0
    points, tets = tet_grid(res, radius)
    assert points.shape == ((res + 1) ** 3, 3) and tets.shape == (6 * res ** 3, 4)
    vol = _volumes(points, tets).abs()
    assert torch.allclose(vol, torch.full_like(vol, (2 * radius / res) ** 3 / 6)) and \
        math.isclose(float(vol.sum()), (2 * radius) ** 3, rel_tol=1e-5)
    # conforming: every triangle is shared by two tetrahedra, except those on the cube's boundary
    faces = torch.sort(torch.cat([tets[:, [0, 1, 2]], tets[:, [0, 1, 3]], tets[:, [0, 2, 3]], tets[:, [1, 2, 3]]]), -1).values
    _, counts = torch.unique(faces, dim=0, return_counts=True)
    assert set(counts.tolist()) == {1, 2} and int((counts == 1).sum()) == 6 * 2 * res * res


def test_a_sphere_comes_out_closed_outward_and_within_one_percent_in_area_and_volume():
    res, r = 64, 0.5  # 0.5 lies on the lattice: corners with a distance of exactly 0 are included
    points, tets = tet_grid(res, 1.0)
    vertices, faces = marching_tetrahedra(points, points.norm(dim=-1) - r, tets)
    mesh = trimesh.Trimesh(vertices.numpy(), faces.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and len(mesh.split(only_watertight=False)) == 1
    assert mesh.volume > 0  # wound counter-clockwise seen from outside
    assert abs(mesh.area / (4 * math.pi * r * r) - 1) < 0.01
    assert abs(mesh.volume / (4 / 3 * math.pi * r ** 3) - 1) < 0.01


def test_surface_vertices_follow_the_distances_and_the_offsets():
    res = 8
    points, tets = tet_grid(res, 1.0)
    offsets = torch.zeros_like(points, requires_grad=True)
    sdf = (points.norm(dim=-1) - 0.43).requires_grad_()
    positions = deformed(points, offsets, res, 1.0)
    vertices, faces = marching_tetrahedra(positions, sdf, tets)
    (vertices ** 2).sum().backward()
    assert sdf.grad.abs().sum() > 0 and offsets.grad.abs().sum() > 0
    # moving the distances moves the surface: a larger sphere where every distance drops by 0.05
    bigger, _ = marching_tetrahedra(points, sdf.detach() - 0.05, tets)
    assert float(bigger.norm(dim=-1).mean()) > float(vertices.detach().norm(dim=-1).mean()) + 0.03
    # offsets are bounded to half a cell along each axis
    far = deformed(points, torch.full_like(points, 100.0), res, 1.0)
    assert float((far - points).abs().max()) <= 1.0 / res + 1e-6


def test_no_crossing_gives_an_empty_surface():
    points, tets = tet_grid(4, 1.0)
    vertices, faces = marching_tetrahedra(points, torch.ones(len(points)), tets)
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)


def test_faces_stay_consistently_wound_when_offsets_turn_tetrahedra_inside_out():
    """Offsets of up to half a cell can flatten or invert a tetrahedron (measured: 22 edges of a
    mesh-stage duck ran the same way in both their faces). Wound on the lattice, the surface stays
    consistent; wound on the moved points, this random case does not."""
    res = 16
    points, tets = tet_grid(res, 1.0)
    generator = torch.Generator().manual_seed(0)
    positions = deformed(points, 3 * torch.randn(points.shape, generator=generator), res, 1.0)
    assert (_volumes(positions, tets) * _volumes(points, tets) < 0).any()  # some are inside out
    sdf = points.norm(dim=-1) - 0.6 + 0.02 * torch.randn(len(points), generator=generator)
    for lattice, consistent in ((points, True), (None, False)):
        vertices, faces = marching_tetrahedra(positions, sdf, tets, lattice=lattice)
        mesh = trimesh.Trimesh(vertices.numpy(), faces.numpy(), process=False)
        assert mesh.is_watertight and mesh.is_winding_consistent == consistent
        if consistent:
            assert mesh.volume > 0  # and outward


def test_the_euler_count_on_the_signs_gives_the_genus_of_the_drawn_surface():
    """Brute force: on random solids with many handles (one piece, no cavities), 1 - lattice_euler
    equals the genus of the welded marching-tetrahedra surface; a block is 1, the same block with a
    tunnel 0, two blocks that touch at nothing but a lattice diagonal 2 or 1 by the triangulation's
    choice of diagonal (the Kuhn cells join along (1, 1, 1) only)."""
    res = 16
    n = res + 1
    points, tets = tet_grid(res)
    rng = np.random.default_rng(0)
    genera = []
    for _ in range(8):
        field = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), rng.uniform(1.0, 2.0))
        solid = field > np.quantile(field, 0.55)
        solid[[0, -1]] = solid[:, [0, -1]] = solid[:, :, [0, -1]] = False  # the grid's edge outside
        solid = closed(solid, 0)
        signs = torch.from_numpy(np.where(solid.reshape(-1), -1.0, 1.0)).float()
        vertices, faces = marching_tetrahedra(points, signs, tets)
        genera.append(surface_genus(vertices.numpy(), faces.numpy()))
        assert 1 - lattice_euler(solid) == genera[-1]
    assert max(genera) >= 3  # the cases have handles to count
    block = np.zeros((n, n, n), bool)
    block[3:12, 3:12, 3:12] = True
    assert lattice_euler(block) == 1
    block[6:8, 6:8, :] = False
    assert lattice_euler(block) == 0
    pair = np.zeros((n, n, n), bool)
    pair[2:5, 2:5, 2:5] = True
    pair[5:8, 5:8, 5:8] = True  # corner to corner along (1, 1, 1): an edge of the triangulation joins them
    assert lattice_euler(pair) == 1
    pair[5:8, 5:8, 5:8] = False
    pair[5:8, 5:8, 0:2] = True  # corner to corner along (1, 1, -1): no edge joins them
    assert lattice_euler(pair) == 2
