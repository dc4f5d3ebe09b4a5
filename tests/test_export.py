import numpy as np
import pytest
import torch
import trimesh

from conftest import validate_gltf
from dreamer.errors import UserError
from dreamer.export.mesh import extract_mesh, textured_mesh_from_field
from dreamer.export.writers import write_glb, write_obj


def ball_density(p):
    return 40.0 * (p.norm(dim=-1) < 0.5).float() + 40 * torch.clamp(0.5 - p.norm(dim=-1), 0, 1)


def colour_by_height(p):
    return torch.stack([(p[:, 1] + 1) / 2, torch.full_like(p[:, 0], 0.2), torch.full_like(p[:, 0], 0.8)], -1)


@pytest.fixture(scope="module")
def ball_mesh():
    return textured_mesh_from_field(ball_density, colour_by_height, 1.0, 64, 10.0, 2000, 128)


def test_marching_cubes_ball_is_outward_and_right_size():
    mesh = extract_mesh(ball_density, 1.0, 64, 10.0)
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(r.mean() - 0.5) < 0.03
    assert mesh.is_watertight and mesh.volume > 0  # positive volume: faces wound outward
    assert abs(mesh.volume - 4 / 3 * np.pi * 0.5 ** 3) / (4 / 3 * np.pi * 0.5 ** 3) < 0.05


def test_largest_component_only():
    def two_balls(p):
        big = (p - torch.tensor([0.3, 0, 0])).norm(dim=-1) < 0.4
        small = (p - torch.tensor([-0.6, 0, 0])).norm(dim=-1) < 0.15
        return 40.0 * (big | small).float()
    mesh = extract_mesh(two_balls, 1.0, 64, 10.0)
    assert mesh.vertices[:, 0].min() > -0.2


def test_empty_field_is_a_clear_error():
    with pytest.raises(UserError, match="never exceeds the isosurface threshold"):
        extract_mesh(lambda p: torch.zeros(p.shape[0]), 1.0, 32, 10.0)


def test_a_field_that_reaches_the_grid_edge_is_closed_there():
    """A slab through the whole grid (and a uniform fog): the padded grid closes them at its edge."""
    slab = extract_mesh(lambda p: 40.0 * (p[:, 1].abs() < 0.2).float(), 1.0, 32, 10.0)
    assert slab.is_watertight and slab.volume > 0
    voxel = 2 / 31
    assert np.allclose(slab.bounds[:, [0, 2]], [[-1, -1], [1, 1]], atol=voxel)  # closed within a voxel of the edge
    assert 4 * 0.4 < slab.volume < (2 + 2 * voxel) ** 2 * (0.4 + 2 * voxel)
    fog = extract_mesh(lambda p: torch.full((p.shape[0],), 5.0), 1.0, 16, 1.0)
    assert fog.is_watertight and 8.0 < fog.volume < (2 + 2 * 2 / 15) ** 3


def test_texture_bake_samples_the_colour_field(ball_mesh):
    tm = ball_mesh
    assert len(tm.faces) <= 2000
    # Look up each vertex's UV in the texture: it must carry that vertex's colour.
    S = tm.texture.shape[0]
    col = np.clip((tm.uvs[:, 0] * S).astype(int), 0, S - 1)
    row = np.clip(((1 - tm.uvs[:, 1]) * S).astype(int), 0, S - 1)
    sampled = tm.texture[row, col].astype(np.float32) / 255
    truth = colour_by_height(torch.from_numpy(tm.vertices)).numpy()
    assert np.median(np.abs(sampled - truth).max(1)) < 0.05


def test_glb_round_trip_and_khronos_validator(ball_mesh, tmp_path):
    path = write_glb(ball_mesh, tmp_path / "model.glb")
    report = validate_gltf(path)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    scene = trimesh.load(path)
    mesh = scene.to_geometry()
    assert len(mesh.faces) == len(ball_mesh.faces)
    assert np.allclose(np.sort(mesh.vertices[:, 1]), np.sort(ball_mesh.vertices[:, 1]), atol=1e-5)
    import json
    import struct
    raw = path.read_bytes()
    n = struct.unpack("<I", raw[12:16])[0]
    gltf = json.loads(raw[20:20 + n])
    mat = gltf["materials"][0]["pbrMetallicRoughness"]
    assert mat["metallicFactor"] == 0.0 and "baseColorTexture" in mat
    assert "NaN" not in raw[20:20 + n].decode()


def test_obj_writes_mtl_and_png(ball_mesh, tmp_path):
    files = write_obj(ball_mesh, tmp_path / "model.obj")
    names = sorted(p.name for p in files)
    assert names == ["model.mtl", "model.obj", "model.png"]
    assert "map_Kd model.png" in (tmp_path / "model.mtl").read_text()
    assert "mtllib model.mtl" in (tmp_path / "model.obj").read_text()
    loaded = trimesh.load(tmp_path / "model.obj", force="mesh")
    assert len(loaded.faces) == len(ball_mesh.faces)


def test_auto_threshold_matches_the_fields_own_silhouette():
    """A soft Gaussian blob: its opacity along a line at distance rho from the centre is
    1 - exp(-10.03 exp(-rho^2 / 0.08)), which crosses 0.5 at rho = 0.462."""
    def blob(p):
        return 20 * torch.exp(-(p ** 2).sum(-1) / (2 * 0.2 ** 2))
    mesh = extract_mesh(blob, 1.0, 96, "auto")
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(r.mean() - 0.462) < 0.03
