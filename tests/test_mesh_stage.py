"""The mesh stage's parts against known answers: regularizers on hand-made meshes, the signed
distance it starts from on an analytic field, the renderer's outputs, and its export."""
import math

import pytest
import torch
import trimesh

from dreamer.cameras import orbit
from dreamer.config import build_config
from dreamer.errors import UserError
from dreamer.geometry.mesh_regularizers import (grid_edges, laplacian_smoothness, normal_consistency,
                                                sdf_sign_flips, unique_edges)
from dreamer.geometry.tetrahedra import marching_tetrahedra, tet_grid
from dreamer.representations.base import FieldRepresentation
from dreamer.representations.mesh import Mesh
from renderers.background import Background
from renderers.mesh import draw, vertex_normals
from renderers.volume import ShadingSpec


def cube():
    m = trimesh.creation.box()
    return torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.long)


def test_normal_consistency_of_a_cube_and_of_a_plane():
    v, f = cube()
    # 18 edges: 6 diagonals between coplanar triangles (0), 12 cube edges at 90 degrees (1 - cos = 1)
    assert len(unique_edges(f)[0]) == 18
    assert float(normal_consistency(v, f)) == pytest.approx(12 / 18, abs=1e-6)
    grid = trimesh.creation.box(extents=(1, 1, 1e-9))  # flat: every neighbouring pair agrees
    plane = trimesh.Trimesh(grid.vertices, grid.faces[grid.face_normals[:, 2] > 0.5])
    assert float(normal_consistency(torch.tensor(plane.vertices, dtype=torch.float32),
                                    torch.tensor(plane.faces))) == pytest.approx(0, abs=1e-6)


def test_laplacian_is_zero_on_a_regular_grid_interior_and_the_offset_where_one_vertex_moves():
    n = 5
    xs, ys = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    v = torch.stack([xs.flatten(), ys.flatten(), torch.zeros(n * n)], -1)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, (i + 1) * n + j, (i + 1) * n + j + 1, i * n + j + 1
            faces += [[a, b, d], [b, c, d]]
    f = torch.tensor(faces)
    # the centre vertex of a regular triangulated grid sits at the mean of its 6 neighbours
    centre = 2 * n + 2
    lifted = v.clone()
    lifted[centre, 2] = 0.6
    flat, bumped = float(laplacian_smoothness(v, f)), float(laplacian_smoothness(lifted, f))
    # the flat grid: only border vertices are off their neighbours' mean; lifting the centre adds
    # 0.6 at the centre and 0.6/6 at each of its 6 neighbours (in z), over 25 vertices
    assert bumped - flat == pytest.approx((0.6 + 6 * 0.1) / 25, abs=1e-5)


def test_sdf_sign_flips_penalize_only_crossing_edges():
    edges = torch.tensor([[0, 1], [1, 2], [2, 3]])
    sdf = torch.tensor([-0.1, -0.2, 0.3, 0.4], requires_grad=True)
    loss = sdf_sign_flips(sdf, edges, cell=0.1)
    bce = lambda logit, target: float(torch.nn.functional.binary_cross_entropy_with_logits(  # noqa: E731
        torch.tensor(logit), torch.tensor(target)))
    assert float(loss) == pytest.approx((bce(-2.0, 1.0) + bce(3.0, 0.0)) / 2, rel=1e-5)
    loss.backward()
    assert sdf.grad[0] == 0 and sdf.grad[3] == 0  # ends of edges that do not cross get nothing
    assert sdf.grad[1] < 0 < sdf.grad[2]  # pulled towards each other's sign
    assert float(sdf_sign_flips(torch.tensor([1.0, 2.0, 3.0, 4.0]), edges, 0.1)) == 0


def test_grid_edges_count_the_kuhn_lattice():
    _, tets = tet_grid(2)
    # per cube: 12 cube edges, 6 face diagonals, 1 main diagonal; shared ones counted once on a 2^3 lattice
    n = 3
    axis_edges = 3 * n * n * (n - 1)
    face_diagonals = 3 * n * (n - 1) ** 2
    main_diagonals = (n - 1) ** 3
    assert len(grid_edges(tets)) == axis_edges + face_diagonals + main_diagonals


class Ball(FieldRepresentation):
    """A field without training: density 10 inside a ball of radius 0.5, a smooth ramp across it."""
    name = "ball"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def density(self, points):
        return 10 * torch.sigmoid((0.5 - points.norm(dim=-1)) * 40) + 0 * self.anchor

    def display_albedo(self, points):
        return (points * 0.5 + 0.5).clamp(0, 1)


def test_the_stage_starts_on_the_coarse_runs_exported_surface_and_fits_it():
    """The signed distances are the distances to the surface the field's export writes (the ball of
    radius 0.5); the fit then moves the surface vertices from chords onto it."""
    values = {"geometry": {"type": "mesh", "isosurface_threshold": 5.0,
                           "mesh": {"init": "run", "resolution": 16, "colour_fit_steps": 0, "fit_steps": 0}}}
    cell = 2 / 16
    lattice = Mesh.create_from(build_config(values=values), Ball(build_config(values=values)))
    points = lattice.points
    near = (points.norm(dim=-1) - 0.5).abs() < cell
    # measured: 0.002 at most (the export's voxels are 2/127 wide; the distance is to its facets)
    assert float((lattice.sdf.detach()[near] - (points[near].norm(dim=-1) - 0.5)).abs().max()) < 0.05 * cell
    assert float(lattice.sdf.abs().max()) <= 3 * cell + 1e-6
    values["geometry"]["mesh"]["fit_steps"] = 60
    fitted = Mesh.create_from(build_config(values=values), Ball(build_config(values=values)))
    before, after = [(m.surface()[0].norm(dim=-1) - 0.5).abs().detach() for m in (lattice, fitted)]
    # measured: the vertices' mean distance from the sphere 0.024 -> 0.014 cells (chords -> arcs)
    assert float(after.mean()) < 0.7 * float(before.mean())


def test_a_mesh_from_gaussian_like_colours_learns_them():
    cfg = build_config(values={"geometry": {"type": "mesh", "isosurface_threshold": 5.0,
                                            "mesh": {"init": "run", "resolution": 16, "colour_fit_steps": 150,
                                                     "fit_steps": 0}}})
    mesh = Mesh.create_from(cfg, Ball(cfg))
    v, _ = mesh.surface()
    with torch.no_grad():
        err = (mesh.colour.albedo(v) - (v * 0.5 + 0.5)).abs().mean()
    assert float(err) < 0.05  # the untrained field answers about 0.5 everywhere: an error near 0.2


def test_the_renderer_draws_a_sphere_mesh_where_it_is_and_lights_it():
    cfg = build_config(values={"geometry": {"type": "mesh", "mesh": {"init": "sphere", "resolution": 24}}})
    mesh = Mesh(cfg)
    v, f = mesh.surface()
    normals = vertex_normals(v, f)
    assert float((normals * torch.nn.functional.normalize(v, dim=-1)).sum(-1).min()) > 0.95  # outward
    cams = orbit(1, 0.0, 2.0, 40.0, 64)
    white = Background(cfg.background)
    flat = draw(v, f, lambda p: torch.full((len(p), 3), 0.5), white, cams, ShadingSpec("albedo"))
    # a ball of radius 0.5 seen from distance 2 covers a disc of angular radius asin(0.25)
    focal = 32 / math.tan(math.radians(20))
    expected = math.pi * (focal * math.tan(math.asin(0.25))) ** 2
    assert float(flat["opacity"].sum()) == pytest.approx(expected, rel=0.03)
    centre_depth = float(flat["depth"][0, 32, 32, 0])
    assert centre_depth == pytest.approx(1.5, abs=0.01)
    lit = draw(v, f, lambda p: torch.full((len(p), 3), 0.5), white, cams, ShadingSpec("shaded", 0.3, 0.7))
    assert float(lit["rgb"][0, 32, 32].mean()) < 0.5  # ambient + diffuse * cos below 1 unless lit head-on


def test_the_exported_mesh_is_the_surface_itself_closed_and_in_one_piece(tmp_path):
    from dreamer.export.writers import write_glb
    cfg = build_config(values={"geometry": {"type": "mesh", "mesh": {"init": "sphere", "resolution": 24}},
                               "export": {"texture_size": 64}})
    mesh = Mesh(cfg)
    with torch.no_grad():  # a speck apart from the sphere: the export keeps the largest piece
        far = (mesh.points - torch.tensor([0.85, 0.85, 0.85])).norm(dim=-1) < 0.1
        mesh.sdf[far] = -0.05
    tm = mesh.to_mesh(cfg.export)
    write_glb(tm, tmp_path / "model.glb")
    back = trimesh.load_mesh(tmp_path / "model.glb")
    welded = trimesh.Trimesh(back.vertices, back.faces)
    welded.merge_vertices()
    assert welded.is_watertight and welded.is_winding_consistent
    assert len(welded.split(only_watertight=False)) == 1
    assert welded.area == pytest.approx(4 * math.pi * 0.25, rel=0.02)
    v, f = mesh.surface()
    assert len(tm.faces) < len(f)  # the speck is gone


def test_the_export_closes_a_tunnel_the_prior_pierced_and_keeps_the_surface_elsewhere():
    """A sphere of radius 0.5 on a resolution-24 lattice, pierced by a tunnel one cell wide (what a
    few sign flips through a thin wall leave): the surface itself has a handle (Euler
    characteristic 0); the export's, cleaned like every export, has none, and the same area."""
    cfg = build_config(values={"geometry": {"type": "mesh", "mesh": {"init": "sphere", "resolution": 24}},
                               "export": {"texture_size": 64}})
    mesh = Mesh(cfg)
    with torch.no_grad():
        axis = mesh.points[:, :2].abs().max(-1).values
        mesh.sdf[(axis < 0.05) & (mesh.points[:, 2].abs() < 0.6)] = 0.03  # grid spacing 1/12: one lattice column
        raw = trimesh.Trimesh(*[t.numpy() for t in mesh.surface()], process=True)
        clean = trimesh.Trimesh(*[t.numpy() for t in mesh.surface(cleaned=True)], process=True)
    assert raw.is_watertight and raw.euler_number == 0
    assert clean.is_watertight and clean.is_winding_consistent and clean.euler_number == 2
    assert clean.area == pytest.approx(4 * math.pi * 0.25, rel=0.03)
    tm = mesh.to_mesh(cfg.export)
    welded = trimesh.Trimesh(tm.vertices, tm.faces, process=True)
    assert welded.is_watertight and welded.euler_number == 2


def test_mesh_stage_inputs_fail_in_one_line():
    for values, words in [({"mesh": {"init": "run"}}, "init_path"),
                          ({"mesh": {"init": "run", "init_path": "/nonexistent"}}, "not one")]:
        cfg = build_config(values={"geometry": {"type": "mesh", **values}})
        with pytest.raises(UserError, match=words):
            Mesh.validate(cfg)
    cfg = build_config(values={"geometry": {"type": "mesh"}, "guidance": {"method": "vsd", "particles": 2}})
    with pytest.raises(UserError, match="one particle"):
        Mesh.validate(cfg)
