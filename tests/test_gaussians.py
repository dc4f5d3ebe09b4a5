"""3D Gaussians as a representation: PLY files, the density field export uses, initialization,
and whole runs through the CLI."""
import json
import math
import time

import numpy as np
import pytest
import torch
import trimesh
from conftest import ARTIFACTS, validate_gltf
from test_end_to_end import dreamer, kill_9_at_step

from dreamer.config import build_config
from dreamer.export.placement import Placement
from dreamer.export.splats import PROPERTIES, read_splat, write_splat, write_splats_ply
from dreamer.geometry.gaussians import GaussianField, read_splats_ply


def make_field(n=300, sh_degree=0, seed=0, **gaussians):
    cfg = build_config(values={"geometry": {"type": "gaussians", "gaussians": {
        "num_points": n, "sh_degree": sh_degree, **gaussians}}})
    field = GaussianField(cfg.geometry, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # make every parameter non-trivial
        for p in field.splats.values():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return field


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_ply_has_the_62_inria_properties_and_reads_back_exactly(tmp_path, sh_degree):
    field = make_field(sh_degree=sh_degree)
    write_splats_ply(field.splats, tmp_path / "splats.ply")
    back = read_splats_ply(tmp_path / "splats.ply", sh_degree)
    for key, value in field.splats.items():
        want = value.detach()
        if key == "quats":  # written of unit length
            want = torch.nn.functional.normalize(want, dim=-1)
            assert not torch.allclose(value.norm(dim=-1), torch.ones(field.count))  # the raw ones are not
            torch.testing.assert_close(back[key].norm(dim=-1), torch.ones(field.count), rtol=0, atol=1e-6)
        assert torch.equal(back[key], want), key
    header = (tmp_path / "splats.ply").read_bytes().split(b"end_header")[0].decode()
    names = [line.split()[-1] for line in header.splitlines() if line.startswith("property")]
    assert len(names) == 62 and names == list(PROPERTIES)
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[-8:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert "format binary_little_endian 1.0" in header and f"element vertex {field.count}" in header
    from plyfile import PlyData
    v = PlyData.read(str(tmp_path / "splats.ply"))["vertex"]
    used = (sh_degree + 1) ** 2 - 1  # bases beyond DC, per channel (channel-major: 15 a channel)
    assert all(not v[f"f_rest_{c * 15 + b}"].any() for c in range(3) for b in range(used, 15))  # zeros where no data
    assert all(v[f"f_rest_{c * 15 + b}"].any() for c in range(3) for b in range(used)) and not v["nx"].any()


def test_splat_file_is_32_bytes_a_splat_and_decodes_to_the_placed_splats(tmp_path):
    field = make_field(n=257)
    where = Placement(1.7, (0.1, 0.85, -0.2))
    write_splat(field.splats, tmp_path / "splats.splat", where)
    assert (tmp_path / "splats.splat").stat().st_size == 32 * field.count
    s = {k: v.detach() for k, v in field.splats.items()}
    want = (s["means"] * 1.7 + torch.tensor(where.offset)).numpy()
    got = read_splat(tmp_path / "splats.splat")
    order = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731 - the writer sorts splats along a Morton curve
    np.testing.assert_allclose(order(got["means"]), order(want), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.sort(got["scales"].ravel()), np.sort((s["scales"].exp() * 1.7).numpy().ravel()),
                               rtol=1e-5)
    q = got["rot"].astype(np.float64) - 128
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 128, atol=2.5)  # unit quaternions in bytes


def test_ply_follows_the_placement_of_the_mesh(tmp_path):
    field = make_field(n=40)
    write_splats_ply(field.splats, tmp_path / "placed.ply", Placement(2.0, (0.0, 1.0, 0.0)))
    back = read_splats_ply(tmp_path / "placed.ply", 0)
    s = {k: v.detach() for k, v in field.splats.items()}
    torch.testing.assert_close(back["means"], s["means"] * 2 + torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(back["scales"], s["scales"] + math.log(2.0))
    torch.testing.assert_close(back["opacities"], s["opacities"], rtol=0, atol=0)


def test_reads_an_inria_ply_with_normals_and_more_sh_bands(tmp_path):
    """Inria's layout has nx ny nz and 45 f_rest (degree 3), channel-major: all R bases, then G, B."""
    from plyfile import PlyData, PlyElement
    n = 5
    rng = np.random.default_rng(0)
    cols = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)] + \
        ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.zeros(n, dtype=[(c, "f4") for c in cols])
    values = {c: rng.normal(size=n).astype("f4") for c in cols}
    for c in cols:
        data[c] = values[c]
    PlyData([PlyElement.describe(data, "vertex")]).write(str(tmp_path / "inria.ply"))
    back = read_splats_ply(tmp_path / "inria.ply", sh_degree=1)
    assert back["shN"].shape == (n, 3, 3)
    for channel in range(3):
        for basis in range(3):  # the first 3 of 15 bases beyond DC, per channel
            assert np.allclose(back["shN"][:, basis, channel].numpy(), values[f"f_rest_{channel * 15 + basis}"])
    assert np.allclose(back["opacities"].numpy(), values["opacity"])
    assert np.allclose(back["quats"][:, 0].numpy(), values["rot_0"])


def test_a_ply_without_gaussian_fields_fails_with_one_line(tmp_path):
    from dreamer.errors import UserError
    trimesh.creation.box().export(tmp_path / "mesh.ply")
    with pytest.raises(UserError, match="not a 3DGS PLY: it lacks f_dc_0"):
        read_splats_ply(tmp_path / "mesh.ply", 0)


def test_density_and_colour_match_a_brute_force_sum():
    field = make_field(n=200, seed=3)
    pts = 0.6 * torch.rand(3000, 3, generator=torch.Generator().manual_seed(4)) - 0.3
    a = {k: v.detach() for k, v in field.activated().items()}
    from gsplat.cuda import _torch_impl as gs_ref
    _, precis = gs_ref._quat_scale_to_covar_preci(a["quats"], a["scales"], compute_covar=False)
    d = pts[:, None] - a["means"][None]  # (P, N, 3)
    kernel = torch.exp(-0.5 * torch.einsum("pni,nij,pnj->pn", d, precis, d))
    kernel = kernel * (d.norm(dim=-1) <= 3 * a["scales"].max(1).values)
    density = (kernel * a["opacities"] / (math.sqrt(2 * math.pi) * a["scales"].prod(1) ** (1 / 3))).sum(1)
    w = kernel * a["opacities"]
    colour = (0.5 + 0.28209479177387814 * a["colors"][:, 0]).clamp_min(0)
    albedo = (w @ colour + 0.5e-6) / (w.sum(1) + 1e-6)[:, None]
    assert density.max() > 1.0
    torch.testing.assert_close(field.density(pts), density, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(field.display_albedo(pts), albedo, rtol=1e-4, atol=1e-5)


def test_a_line_through_a_gaussian_integrates_to_its_opacity():
    """The density is normalised so the NeRF exporter's optical-depth threshold fits Gaussians:
    o / (sqrt(2 pi) s) exp(-x^2 / 2 s^2) integrates to o erf(3 / sqrt 2) inside the 3-sigma cut."""
    field = make_field(n=1)
    with torch.no_grad():
        field.splats["means"].zero_()
        field.splats["scales"].fill_(math.log(0.05))
        field.splats["opacities"].fill_(0.0)  # sigmoid: 0.5
    x = torch.linspace(-0.3, 0.3, 6001)
    line = torch.stack([x, torch.zeros_like(x), torch.zeros_like(x)], 1)
    integral = float(field.density(line).sum() * (x[1] - x[0]))
    assert integral == pytest.approx(0.5 * math.erf(3 / math.sqrt(2)), rel=1e-3)


def test_init_from_a_ply_file(tmp_path):
    field = make_field(n=50, sh_degree=1)
    write_splats_ply(field.splats, tmp_path / "start.ply")
    again = make_field(n=7, sh_degree=1, init="ply", init_path=str(tmp_path / "start.ply"))
    # make_field perturbs after init: compare the file's values to a fresh, unperturbed load
    cfg = build_config(values={"geometry": {"type": "gaussians", "gaussians": {
        "init": "ply", "init_path": str(tmp_path / "start.ply"), "sh_degree": 1}}})
    fresh = GaussianField(cfg.geometry)
    assert fresh.count == 50 and again.count == 50
    for key, value in field.splats.items():
        want = torch.nn.functional.normalize(value.detach(), dim=-1) if key == "quats" else value.detach()
        assert torch.equal(fresh.splats[key], want), key


def test_checkpoint_with_more_gaussians_loads_into_a_fresh_field():
    grown = make_field(n=90)
    fresh = make_field(n=10, seed=9)
    fresh.load_state_dict(grown.state_dict())
    assert fresh.count == 90
    for key, value in grown.splats.items():
        assert torch.equal(fresh.splats[key], value), key


# -- through the CLI -------------------------------------------------------------------------------------

def test_bad_gaussian_settings_fail_with_one_line(tmp_path):
    cases = [(["geometry.gaussians.init=ply"], "needs geometry.gaussians.init_path"),
             (["geometry.gaussians.sh_degree=5"], "sh_degree must be at most 3"),
             (["geometry.gaussians.backend=vulkan"], "unknown geometry.gaussians.backend"),
             (["guidance.particles=2", "--method", "vsd"], "Gaussians train one particle")]
    for overrides, message in cases:
        proc = dreamer("generate", "a rubber duck", "--representation", "gaussians", "--out",
                       str(tmp_path / "x"), *overrides)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_gaussian_duck_end_to_end(tmp_path):
    """The issue's command, unchanged: the duck with Gaussians on this machine."""
    out = tmp_path / "duck"
    started = time.time()
    proc = dreamer("generate", "a rubber duck", "--representation", "gaussians", "--out", str(out))
    wall = time.time() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sds-gaussians.yaml" in proc.stderr
    state = json.loads((out / "run.json").read_text())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "gaussian-duck-summary.json").write_text(json.dumps({
        "command": 'dreamer generate "a rubber duck" --representation gaussians', "wall_seconds": round(wall, 1),
        "timings": state["timings"], "metrics": state["metrics"], "mesh": state.get("mesh")}, indent=1))
    assert state["status"] == "done" and state["step"] == 600
    assert state["metrics"]["silhouette_iou_8views"] >= 0.72
    for name in ("model.glb", "model.obj", "model.png", "splats.ply", "turntable.mp4"):
        assert (out / name).is_file(), name
    assert validate_gltf(out / "model.glb")["issues"]["numErrors"] == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    splats = read_splats_ply(out / "splats.ply", 0)
    raw = {k: ckpt["state_dict"][f"particles.0.field.splats.{k}"] for k in ("means", "scales", "quats", "opacities", "sh0")}
    for key in ("opacities", "sh0"):
        assert torch.equal(splats[key], raw[key]), key
    assert torch.equal(splats["quats"], torch.nn.functional.normalize(raw["quats"], dim=-1))
    # placed as the mesh is (1 m tall, standing on y = 0): one scale and one offset for every splat
    scale = float((splats["scales"] - raw["scales"]).mean().exp())
    torch.testing.assert_close(splats["scales"], raw["scales"] + math.log(scale))
    offset = (splats["means"] - raw["means"] * scale).mean(0)
    torch.testing.assert_close(splats["means"], raw["means"] * scale + offset, rtol=1e-5, atol=1e-5)
    assert splats["means"].shape[0] > 4096 * 1.1  # densification grew it
    mesh = trimesh.load(out / "model.glb", process=False).to_geometry()
    mesh.merge_vertices(merge_tex=True, merge_norm=True)  # weld the UV seams
    assert mesh.is_watertight and len(mesh.split(only_watertight=False)) == 1  # one closed sheet, not flakes
    (out / "splats.ply").unlink()
    # the splats are placed like the mesh, so the same export settings give the same file
    again = dreamer("export", str(out), "--format", "glb,ply", "--no-turntable")
    assert again.returncode == 0, again.stderr[-2000:]
    assert torch.equal(read_splats_ply(out / "splats.ply", 0)["means"], splats["means"])


@pytest.mark.slow
def test_gaussian_run_resumes_after_kill_across_densification(tmp_path):
    run = tmp_path / "penguin"
    args = ["generate", "a penguin", "--representation", "gaussians", "--steps", "80", "--out", str(run),
            "trainer.checkpoint_every=10", "trainer.val_every=40", "export.resolution=48",
            "export.turntable=false", "geometry.gaussians.num_points=800",
            "geometry.gaussians.densify.refine_start_iter=10", "geometry.gaussians.densify.refine_every=10",
            "geometry.gaussians.densify.refine_stop_iter=70"]
    kill_9_at_step(args, run, 30)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert 30 <= ckpt["global_step"] < 80
    assert ckpt["state_dict"]["particles.0.field.splats.means"].shape[0] != 800  # densified before the kill

    proc = dreamer("resume", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "done" and state["step"] == 80
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].endswith(",gaussians")
    counts = [int(float(r.split(",")[-1])) for r in rows[1:]]
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 81))
    assert len(set(counts)) > 2  # the count kept changing after the resume
    assert validate_gltf(run / "model.glb")["issues"]["numErrors"] == 0
    assert read_splats_ply(run / "splats.ply", 0)["means"].shape[0] == counts[-1]


SHORT = ["--steps", "20", "export.turntable=false", "export.resolution=48", "export.faces=2000",
         "export.texture_size=64", "geometry.gaussians.num_points=1500"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ism", "tsm", "vsd"])
def test_other_methods_run_on_gaussians(method, tmp_path):
    """ISM and TSM have Gaussian recipes; VSD runs its NeRF recipe with the representation switched."""
    out = tmp_path / method
    proc = dreamer("generate", "a rubber duck", "--method", method, "--representation", "gaussians",
                   "--out", str(out), *SHORT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recipe = f"{method}-gaussians.yaml" if method != "vsd" else "vsd-nerf.yaml"
    assert recipe in proc.stderr
    state = json.loads((out / "run.json").read_text())
    assert state["status"] == "done" and state.get("skipped_steps", 0) == 0
    assert (out / "splats.ply").is_file()
    assert validate_gltf(out / "model.glb")["issues"]["numErrors"] == 0


@pytest.mark.slow
def test_init_from_a_nerf_run_puts_points_inside_it(tmp_path):
    nerf = tmp_path / "nerf"
    proc = dreamer("generate", "a mushroom", "--steps", "30", "--out", str(nerf), "export.turntable=false",
                   "export.resolution=32", "export.formats=[glb]")
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = build_config(values={"geometry": {"type": "gaussians", "gaussians": {
        "init": "nerf", "init_path": str(nerf), "num_points": 2000}}})
    from dreamer.representations import load_representation, make_representation
    field = make_representation(cfg).field  # the chain of stages: Gaussians created from the NeRF run
    nerf_field = load_representation(str(nerf)).field
    with torch.no_grad():
        inside = nerf_field.density(field.splats["means"])
        anywhere = nerf_field.density(2 * torch.rand(2000, 3) - 1)
    assert field.count == 2000
    assert inside.median() > 5 * anywhere.median()  # the points sit in the solid part
    colours = 0.5 + 0.28209479177387814 * field.splats["sh0"][:, 0]
    assert colours.std() > 0.01  # coloured from the NeRF, not a flat grey
