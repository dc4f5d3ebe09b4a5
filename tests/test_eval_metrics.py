"""`dreamer eval`'s metrics on cases with known answers: the truth scores itself perfectly, a duck
turned round or given a second head scores a worse Janus score, a sphere against a cube gives the
IoU computed by hand."""
from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import pytest
import torch

from dreamer.cameras import make_cameras
from dreamer.eval.geometry import chamfer, true_mesh
from dreamer.eval.janus import janus_score
from dreamer.eval.metrics import (
    image_metrics,
    object_renderer,
    psnr,
    detail_match,
    gaussian_blur,
    saturation,
    sharpness,
    silhouette_iou,
)
from dreamer.toy.catalogue import Part, ToyObject, builtin_objects

DUCK = builtin_objects()[0]


class Turned:
    """An object turned 180 degrees about the vertical axis: its front faces the back."""

    def __init__(self, obj):
        self.obj, self.flip = obj, torch.tensor([-1.0, 1.0, -1.0])

    def distance(self, p):
        return self.obj.distance(p * self.flip)

    def query(self, p):
        return self.obj.query(p * self.flip)


def two_faced(obj):
    """The object with its front parts (head, beak, eyes) copied onto its back."""
    extra = [dataclasses.replace(p, center=(p.center[0], p.center[1], -p.center[2])) for p in obj.parts
             if p.center[2] > 0.1]
    return ToyObject(obj.name + " with two faces", [], obj.parts + extra, True)


def janus_of(candidate):
    return janus_score(object_renderer(candidate), object_renderer(DUCK), 15.0, 2.0, 40.0, 48)["janus_score"]


def test_janus_score_separates_the_duck_from_janus_ducks():
    true, turned, doubled = janus_of(DUCK), janus_of(Turned(DUCK)), janus_of(two_faced(DUCK))
    assert true == pytest.approx(-1.0)
    assert turned == pytest.approx(1.0)
    assert doubled > true + 0.5  # a face on the back moves the score well towards +1


def test_the_truth_scores_itself_perfectly():
    cams = make_cameras(torch.full((4,), 15.0), torch.tensor([0.0, 90, 180, 270]), torch.full((4,), 2.0),
                        torch.full((4,), 40.0), 48, 48)
    m = image_metrics(object_renderer(DUCK), object_renderer(DUCK), cams)
    assert m["silhouette_iou"] == 1.0 and math.isinf(m["psnr"]) and m["saturation_ratio"] == pytest.approx(1.0)
    assert m["sharpness_ratio"] == pytest.approx(1.0) and m["sharpness"] > 0 and m["detail_match"] == pytest.approx(1.0)
    mesh = true_mesh(DUCK, resolution=64)
    assert chamfer(mesh, mesh) == 0.0
    shifted = mesh.copy()
    shifted.apply_translation([0.05, 0, 0])
    diagonal = float(((mesh.bounds[1] - mesh.bounds[0]) ** 2).sum() ** 0.5)
    assert 0.3 * 0.05 / diagonal < chamfer(shifted, mesh) < 0.05 / diagonal  # at most the shift
    # the export's silhouette: the true mesh drawn by the mesh renderer covers what the truth covers
    from dreamer.config import build_config
    from dreamer.evaluation import mesh_coverage
    truth = object_renderer(DUCK)(cams)[1]
    assert silhouette_iou(mesh_coverage(mesh, build_config(), cams), truth) > 0.97  # measured 0.982
    assert silhouette_iou(mesh_coverage(shifted, build_config(), cams), truth) < 0.9  # 0.883


def test_sphere_against_a_cube_of_the_same_size_gives_the_hand_computed_iou():
    """Seen face-on from distance d, a sphere of radius r is a disc of radius r / sqrt(d^2 - r^2)
    (in units of the focal length); the cube of side 2r shows its front face, a square of half-width
    r / (d - r), which contains the disc. IoU = pi rho^2 / (2 w)^2."""
    r, d, res = 0.5, 2.0, 256
    white = (1.0, 1.0, 1.0)
    sphere = ToyObject("sphere", [], [Part("sphere", {"radius": r}, (0, 0, 0), white)])
    cube = ToyObject("cube", [], [Part("box", {"half": (r, r, r)}, (0, 0, 0), white)])
    cams = make_cameras(torch.zeros(1), torch.zeros(1), torch.full((1,), d), torch.full((1,), 40.0), res, res)
    _, a = object_renderer(sphere)(cams)
    _, b = object_renderer(cube)(cams)
    rho, w = r / math.sqrt(d * d - r * r), r / (d - r)
    assert silhouette_iou(a, b) == pytest.approx(math.pi * rho ** 2 / (2 * w) ** 2, abs=0.01)


def test_psnr_and_saturation_closed_forms():
    img = torch.zeros(1, 4, 4, 3)
    assert psnr(img, img + 0.1) == pytest.approx(20.0)
    red, grey = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.5, 0.5, 0.5])
    pixels = torch.stack([red, grey]).reshape(1, 1, 2, 3)
    assert saturation(pixels, torch.ones(1, 1, 2)) == pytest.approx(0.5)
    assert saturation(pixels, torch.tensor([[[1.0, 0.0]]])) == pytest.approx(1.0)


def test_sharpness_closed_form_and_what_lowers_it():
    """A luminance ramp of slope a across x: each of the H(W-1) horizontal pairs differs by a, the
    (H-1)W vertical pairs by 0, so the RMS is a sqrt(H(W-1) / (H(W-1) + (H-1)W))."""
    h, w, a = 6, 9, 0.05
    ramp = (torch.arange(w) * a).expand(1, h, w)[..., None].expand(1, h, w, 3).clone()
    full = torch.ones(1, h, w)
    expected = a * math.sqrt(h * (w - 1) / (h * (w - 1) + (h - 1) * w))
    assert sharpness(ramp, full) == pytest.approx(expected, rel=1e-5)
    # only pairs inside the opaque core count: the silhouette's edge is IoU's business
    edge = torch.zeros(1, h, w)
    edge[..., :, :3] = 1.0  # three covered columns: two horizontal pairs per row, and the vertical ones
    pairs_x, pairs_y = h * 2, (h - 1) * 3
    assert sharpness(ramp, edge) == pytest.approx(a * math.sqrt(pairs_x / (pairs_x + pairs_y)), rel=1e-5)
    assert sharpness(ramp, torch.zeros(1, h, w)) == 0.0
    # the duck's own renders: a blurred copy has less interior detail, a flat colour none
    cams = make_cameras(torch.full((2,), 15.0), torch.tensor([0.0, 90.0]), torch.full((2,), 2.0),
                        torch.full((2,), 40.0), 64, 64)
    rgb, cov = object_renderer(DUCK)(cams)
    blurred = torch.nn.functional.avg_pool2d(rgb.permute(0, 3, 1, 2), 5, 1, 2, count_include_pad=False)
    assert sharpness(blurred.permute(0, 2, 3, 1), cov) < 0.7 * sharpness(rgb, cov)
    assert sharpness(torch.full_like(rgb, 0.5), cov) == 0.0


def test_detail_match_closed_form_and_what_lowers_it():
    """A contrast-scaled truth, 0.5 + a (truth - 0.5), has the high-pass a h_t, so its detail match
    is 2a / (1 + a^2); a flat render has none; noise and blur lower it, noise unrelated to the truth
    scores about 0."""
    cams = make_cameras(torch.full((2,), 15.0), torch.tensor([0.0, 90.0]), torch.full((2,), 2.0),
                        torch.full((2,), 40.0), 64, 64)
    rgb, cov = object_renderer(DUCK)(cams)
    for a in (0.5, 0.25):
        assert detail_match(0.5 + a * (rgb - 0.5), cov, rgb, cov) == pytest.approx(2 * a / (1 + a * a), rel=1e-4)
    flat = torch.full_like(rgb, 0.5)
    assert detail_match(flat, cov, rgb, cov) == 0.0
    g = torch.Generator().manual_seed(0)
    noise = 0.05 * torch.randn(rgb.shape, generator=g)
    assert abs(detail_match(flat + noise, cov, rgb, cov)) < 0.1
    assert detail_match(rgb + noise, cov, rgb, cov) < 0.9
    blur = lambda img, s: gaussian_blur(img.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1)
    soft, softer = detail_match(blur(rgb, 1.0), cov, rgb, cov), detail_match(blur(rgb, 2.0), cov, rgb, cov)
    assert 1 > soft > softer > 0


def test_gaussian_blur_equals_a_dense_kernel_on_each_channel_alone():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 11, generator=g)
    sigma, radius = 1.3, 3
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    rows = torch.arange(9)[:, None, None, None] + offsets.long()[None, None, :, None]  # brute force:
    cols = torch.arange(11)[None, :, None, None] + offsets.long()[None, None, None, :]  # edges replicated
    patches = x[:, :, rows.clamp(0, 8), cols.clamp(0, 10)]  # (2, 3, 9, 11, 7, 7)
    expected = (patches * kernel).sum((-1, -2))
    assert torch.allclose(gaussian_blur(x, sigma, radius), expected, atol=1e-6)
    one_channel = gaussian_blur(x[:, 1:2], sigma, radius)  # channels do not mix
    assert torch.allclose(gaussian_blur(x, sigma, radius)[:, 1:2], one_channel, atol=1e-7)


def test_eval_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    from dreamer.cli import main
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a dreamer run folder" in capsys.readouterr().err


def test_a_mesh_passed_with_object_becomes_a_toy_object_that_runs_and_evaluates(tmp_path, capsys):
    """`dreamer generate "a wooden crate" --object crate.glb`, then `dreamer eval`: the crate's own
    ground truth scores the run."""
    import json

    import trimesh

    from dreamer.cli import main
    trimesh.creation.box(extents=(1.0, 0.6, 0.8)).export(tmp_path / "crate.glb")
    out = tmp_path / "run"
    rc = main(["generate", "a wooden crate", "--object", str(tmp_path / "crate.glb"), "--steps", "10",
               "--out", str(out), "prior.refs_per_object=16", "camera.width=[32]", "camera.height=[32]",
               "renderer.num_samples_per_ray=32", "export.resolution=48", "export.turntable=false",
               "export.formats=[glb]"])
    assert rc == 0, capsys.readouterr().err
    assert main(["eval", str(out), "--views", "4", "--resolution", "32"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["object"] == "wooden crate" and 0 < m["silhouette_iou"] <= 1 and m["janus_score"] is None
    # Chamfer is taken in field units, where the truth is, whatever height and pivot the export used
    from dreamer.eval.geometry import true_mesh
    from dreamer.pipeline import load_system
    from dreamer.runs import RunDir
    from dreamer.toy.catalogue import toy_object
    run = RunDir.open(out)
    cfg = run.config()
    field_mesh = load_system(run, cfg).representation.to_mesh(cfg.export)
    direct = chamfer(trimesh.Trimesh(field_mesh.vertices, field_mesh.faces), true_mesh(toy_object(cfg.prior, cfg.prompt)))
    assert m["chamfer"] == pytest.approx(direct, abs=2e-3)  # not the file as placed (1 m tall, on the ground)
    state = json.loads((out / "run.json").read_text())  # as a run exported before run.json kept the placement
    del state["placement"]
    (out / "run.json").write_text(json.dumps(state))
    assert main(["eval", str(out), "--views", "4", "--resolution", "32"]) == 0
    assert json.loads((out / "metrics.json").read_text())["chamfer"] == pytest.approx(m["chamfer"], abs=2e-3)
    assert main(["export", str(out), "--height", "3", "--pivot", "center", "--no-turntable"]) == 0
    assert main(["eval", str(out), "--views", "4", "--resolution", "32"]) == 0
    assert json.loads((out / "metrics.json").read_text())["chamfer"] == pytest.approx(m["chamfer"], abs=2e-3)
    assert main(["generate", "a wooden crate", "--object", str(tmp_path / "missing.glb")]) == 2


def test_bench_quality_runs_each_methods_recipe_for_a_named_representation(tmp_path, monkeypatch, capsys):
    """--representation mesh plans each method's mesh recipe (a coarse NeRF, then the mesh stage with
    that method's guidance) in folders of their own; an unknown representation exits 2 before any run."""
    from dreamer.batch.jobs import job_config
    from dreamer.bench import quality
    from dreamer.cli import main
    planned = []

    def plan_only(jobs, pool, say):
        planned.extend(jobs)
        return {}, 0.0
    monkeypatch.setattr(quality, "run_planned", plan_only)
    argv = ["bench", "quality", "--methods", "sds,vsd", "--objects", "penguin", "--seeds", "1",
            "--out", str(tmp_path), "--representation"]
    assert main([*argv, "tetrahedra"]) == 2 and not planned
    assert "unknown representation 'tetrahedra'; choose one of:" in capsys.readouterr().err
    assert main([*argv, "mesh"]) == 2  # nothing ran, so nothing finished: the bench says so
    assert [out.relative_to(tmp_path).as_posix() for _, out in planned] == ["sds-mesh/penguin/seed1", "vsd-mesh/penguin/seed1"]
    for (spec, _), method in zip(planned, ["sds", "vsd"]):
        cfg = job_config(spec)
        assert (cfg.geometry.type, cfg.geometry.mesh.init, cfg.guidance.method) == ("mesh", "coarse", method)
        assert (cfg.guidance.max_step_percent, cfg.trainer.max_steps, cfg.seed) == (0.5, 300, 1)
    planned.clear()
    assert main(argv[:-1]) == 2  # no representation: each method's NeRF recipe, in the folders as before
    assert [job_config(spec).geometry.type for spec, _ in planned] == ["nerf", "nerf"]
    assert [out.relative_to(tmp_path).as_posix() for _, out in planned] == ["sds/penguin/seed1", "vsd/penguin/seed1"]


def test_bench_quality_runs_the_grid_writes_its_tables_and_resumes(tmp_path, capsys):
    """Two seeds of SDS on the duck, two at a time: each run scored by its worker (metrics in range,
    the spread of the two seeds), the tables written, a second call reruns and rescores nothing, a
    third rescores only the run that changed."""
    import csv
    import json

    from dreamer.cli import main
    small = ["prior.refs_per_object=16", "camera.width=[32]", "camera.height=[32]", "renderer.num_samples_per_ray=32",
             "export.resolution=48", "export.faces=2000", "export.texture_size=64", "export.formats=[glb]"]
    argv = ["bench", "quality", "--methods", "sds", "--objects", "rubber duck", "--seeds", "0,1",
            "--run-steps", "5", "--jobs", "2", "--out", str(tmp_path), *small]
    assert main(argv) == 0, capsys.readouterr().err
    said = capsys.readouterr()  # the workers scored their runs: the bench keeps those scores
    assert (said.out + said.err).count("kept the metrics of") == 2 and "evaluating " not in said.out + said.err
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert sorted((r["method"], r["seed"]) for r in rows) == [("sds", "0"), ("sds", "1")]
    for r in rows:
        m = json.loads((Path(r["run"]) / "metrics.json").read_text())
        assert 0 < m["silhouette_iou"] <= 1 and m["psnr"] > 5 and m["chamfer"] > 0 and m["saturation_ratio"] > 0
        assert -1 <= m["janus_score"] <= 1 and len(m["janus_views"]) == 5
        assert m["spread"]["runs"] == 2 and 0 <= m["spread"]["silhouette_disagreement"] <= 1
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("Command: `dreamer bench quality --methods sds") and "| sds | 2 |" in summary
    sds_row = next(line for line in summary.splitlines() if line.startswith("| sds | 2 |"))
    assert sds_row.split("|")[-2].strip() != "-"  # the seed spread is filled in
    # The method x object tables: the duck's cell is the mean of the two seeds' values.
    janus = [line for line in summary.split("### Janus score")[1].splitlines() if line.startswith("| sds |")][0]
    assert janus.split("|")[2].strip() == f"{sum(float(r['janus_score']) for r in rows) / 2:+.2f}"
    sharp = [line for line in summary.split("### Sharpness ratio")[1].splitlines() if line.startswith("| sds |")][0]
    assert sharp.split("|")[2].strip() == f"{sum(float(r['sharpness_ratio']) for r in rows) / 2:.2f}"
    assert summary.count("| method | rubber duck |") == 8  # one table per BY_OBJECT metric
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(argv) == 0  # everything done: nothing reruns, and nothing is scored again
    said = capsys.readouterr()
    assert "2 jobs, 2 already done" in said.err and (said.out + said.err).count("kept the metrics of") == 2
    again = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [(r["silhouette_iou"], r["janus_score"]) for r in again] == [(r["silhouette_iou"], r["janus_score"]) for r in rows]
    assert json.loads((Path(rows[0]["run"]) / "metrics.json").read_text())["spread"] == m["spread"]
    # a run that changed after it was scored (here: its checkpoint) is scored again, the other is not
    later = time.time() + 5
    os.utime(Path(rows[0]["run"]) / "checkpoints" / "last.ckpt", (later, later))
    assert main(argv) == 0
    said = capsys.readouterr()
    assert (said.out + said.err).count("kept the metrics of") == 1 and (said.out + said.err).count("evaluating ") == 1


def test_eval_diagnostics_measures_the_gradient_shares_of_a_run(tmp_path, capsys):
    """`dreamer eval --diagnostics`: CFG and (for a fake-score method) entropy shares at fixed t,
    before training and at the end, in metrics.json and in the printed table."""
    import json

    from dreamer.cli import main
    out = tmp_path / "run"
    rc = main(["generate", "a rubber duck", "--method", "vsd", "--steps", "8", "--out", str(out),
               "prior.world=realistic", "prior.refs_per_object=16", "camera.width=[32]", "camera.height=[32]",
               "renderer.num_samples_per_ray=32", "export.resolution=48", "export.turntable=false",
               "export.formats=[glb]"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["eval", str(out), "--views", "4", "--resolution", "32", "--diagnostics"]) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    shares = m["gradient_shares"]
    assert set(shares) == {"initial", "final"} and set(shares["final"]) == {"200", "500", "800"}
    for when in shares.values():
        for terms in when.values():
            assert set(terms) == {"cfg", "entropy"} and all(0 <= v < 100 for v in terms.values())
    assert "final   cfg share  t=200:" in printed and "final   entropy share" in printed
    assert 0 <= m["saturation_core"] <= 1
