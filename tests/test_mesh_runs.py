"""A whole mesh run through the CLI, as users start it: a coarse NeRF stage, then the DMTet mesh
stage, killed with -9 inside the mesh stage and resumed. Marked slow: about three minutes on 2 cores."""
import json
import subprocess
import sys
from collections import Counter

import pytest
import torch
import trimesh

from conftest import ROOT, blender_facts, three_facts, validate_gltf
from test_end_to_end import kill_9_at_step

pytestmark = pytest.mark.slow

COARSE_STEPS, MESH_STEPS = 100, 150


@pytest.fixture(scope="module")
def mesh_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("mesh") / "duck"
    args = ["generate", "a rubber duck", "--representation", "mesh", "--steps", str(MESH_STEPS), "--out", str(run),
            f"geometry.mesh.coarse_steps={COARSE_STEPS}", "trainer.checkpoint_every=10", "trainer.val_every=30",
            "export.turntable=false"]
    kill_9_at_step(args, run, 20)  # run.json of the mesh run itself: its step moves in the mesh stage only
    killed = json.loads((run / "run.json").read_text())["step"]
    proc = subprocess.run([sys.executable, "-m", "dreamer.cli", "resume", str(run)], capture_output=True, text=True,
                          cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, killed


def test_a_mesh_run_killed_in_its_mesh_stage_resumes_to_the_same_final_step(mesh_run):
    run, killed = mesh_run
    assert 20 <= killed < MESH_STEPS
    coarse = json.loads((run / "coarse" / "run.json").read_text())
    assert coarse["status"] == "done" and coarse["step"] == COARSE_STEPS and (run / "coarse" / "model.glb").is_file()
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "done" and state["step"] == MESH_STEPS
    assert state["skipped_steps"] == 0  # uncovered pixels once sent NaN to the vertices (up to 42 of 300 steps skipped)
    rows = (run / "metrics.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, MESH_STEPS + 1))  # no gap, no duplicate
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == MESH_STEPS


def test_the_exported_mesh_is_one_closed_manifold_that_validates(mesh_run):
    run, _ = mesh_run
    assert validate_gltf(run / "model.glb")["issues"]["numErrors"] == 0
    back = trimesh.load_mesh(run / "model.glb")
    welded = trimesh.Trimesh(back.vertices, back.faces)  # UV seams split vertices; the surface is one
    welded.merge_vertices()
    edges = Counter(map(tuple, welded.edges_sorted.tolist()))
    assert welded.is_watertight and welded.is_winding_consistent
    assert len(welded.split(only_watertight=False)) == 1
    assert max(edges.values()) == 2  # no edge shared by more than two faces
    assert back.visual.material is not None  # textured


@pytest.fixture(scope="module")
def start_iou(mesh_run):
    """The silhouette IoU (8 held-out views) of the mesh the stage starts from, built again from the
    coarse run as the stage built it, and the coarse NeRF's own."""
    from dreamer.eval.metrics import toy_silhouette_iou
    from dreamer.representations import load_representation
    from dreamer.representations.mesh import Mesh
    from dreamer.runs import RunDir
    from dreamer.toy.catalogue import toy_object
    from renderers.background import Background
    from renderers.volume import ShadingSpec
    run, _ = mesh_run
    cfg = RunDir.open(run).config()
    start = Mesh.create_from(cfg, load_representation(str(run / "coarse")))
    truth, bg = toy_object(cfg.prior, cfg.prompt), Background(cfg.background)
    iou = toy_silhouette_iou(lambda cams: start.render_chunked(bg, cams, ShadingSpec("albedo"))["opacity"][..., 0],
                             truth, cfg.camera)
    coarse_iou = json.loads((run / "coarse" / "run.json").read_text())["metrics"]["silhouette_iou_8views"]
    return iou, coarse_iou


def test_the_mesh_stage_starts_from_its_coarse_field(start_iou):
    """The mesh the stage starts from has the coarse NeRF's silhouette (same 8 held-out views)."""
    start, coarse = start_iou
    assert start == pytest.approx(coarse, abs=0.03)


def test_the_mesh_stage_improves_the_silhouette_it_starts_from(mesh_run, start_iou):
    """The prior's steps improve the fitted start (a learning rate 10x the recipe's crumpled it: the
    demo duck from IoU 0.72 to 0.52). Measured on this duck (a 100-step coarse NeRF at 0.637): 0.657
    after 150 mesh steps (CI, 2026-12-04). A 600-step NeRF leaves less to gain (+0.01 in 300 steps),
    and some objects lose a little (docs/evaluation.md: the toy car 0.439 -> 0.432)."""
    run, _ = mesh_run
    final = json.loads((run / "run.json").read_text())["metrics"]["silhouette_iou_8views"]
    assert final > start_iou[0] + 0.01


TEXTURE_STEPS = 20


def test_the_texture_stage_paints_the_mesh_runs_export_resumes_and_keeps_its_geometry(mesh_run, tmp_path):
    """`dreamer texture` of the mesh run, killed -9 and resumed: the same surface, a new texture."""
    run, _ = mesh_run
    out = tmp_path / "textured"
    args = ["texture", str(run), "--steps", str(TEXTURE_STEPS), "--size", "128", "--out", str(out),
            "trainer.checkpoint_every=5", "export.turntable=false"]
    kill_9_at_step(args, out, 10)
    proc = subprocess.run([sys.executable, "-m", "dreamer.cli", "resume", str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "run.json").read_text())
    assert state["status"] == "done" and state["step"] == TEXTURE_STEPS
    assert validate_gltf(out / "model.glb")["issues"]["numErrors"] == 0
    before, after = (trimesh.load_mesh(p / "model.glb") for p in (run, out))
    assert len(after.faces) == len(before.faces)  # the mesh run's export, as it was
    assert abs(after.area - before.area) < 1e-3 * before.area
    texture = after.visual.material.baseColorTexture
    assert texture.size == (128, 128)
    assert texture.tobytes() != before.visual.material.baseColorTexture.resize((128, 128)).tobytes()
    clients_see_one_closed_textured_object(out, texture_size=128)


def test_blender_and_three_js_open_the_mesh_runs_export(mesh_run):
    run, _ = mesh_run
    from dreamer.runs import RunDir
    clients_see_one_closed_textured_object(run, RunDir.open(run).config().export.texture_size)


def clients_see_one_closed_textured_object(run, texture_size: int):
    """Blender (GLB and OBJ) and three.js (GLB) open the run's export as the mesh it wrote: one smooth,
    closed, manifold, textured object 1 m tall standing on the ground."""
    glb = trimesh.load_mesh(run / "model.glb")
    (mesh,) = three_facts(run / "model.glb")["meshes"]
    assert mesh["attributes"] == ["normal", "position", "uv"] and mesh["vertices"] == len(glb.vertices)
    assert mesh["material"] == "MeshStandardMaterial" and mesh["flatShading"] is False
    assert mesh["map"]["width"] == mesh["map"]["height"] == texture_size
    assert mesh["min"][1] == pytest.approx(0, abs=1e-6) and mesh["max"][1] == pytest.approx(1.0, rel=1e-6)
    for name in ("model.glb", "model.obj"):
        facts = blender_facts(run / name)
        assert facts["objects"] == 1 and facts["faces"] == len(glb.faces), name
        assert facts["smooth_faces"] == facts["faces"] and facts["custom_normals"], name
        assert facts["max_z"] - facts["min_z"] == pytest.approx(1.0, rel=0.01) and facts["min_z"] == pytest.approx(0, abs=1e-4)
        assert facts["base_colour_texture"] and facts["texture_size"] == [texture_size, texture_size], name
        assert (facts["pieces"], facts["open_edges"], facts["non_manifold_edges"], facts["euler"]) == (1, 0, 0, 2), name


def test_three_stages_in_one_command_resume_after_a_kill_in_the_middle_one(tmp_path):
    """`generate --representation texture --coarse mesh`: NeRF, mesh, texture, each a run folder inside
    the next, every stage's steps set on the command line; killed -9 in the mesh stage (after its
    checkpoint at step 50) and resumed, all three finish and the texture paints the mesh stage's export."""
    run = tmp_path / "mushroom"
    args = ["generate", "a mushroom", "--representation", "texture", "--coarse", "mesh", "--steps", "10",
            "--out", str(run), "geometry.texture.coarse_steps=60", "geometry.mesh.coarse_steps=40",
            "geometry.mesh.fit_steps=30", "geometry.texture.size=128", "export.turntable=false"]
    mesh_stage, nerf_stage = run / "coarse", run / "coarse" / "coarse"
    kill_9_at_step(args, mesh_stage, 52)
    assert json.loads((nerf_stage / "run.json").read_text())["status"] == "done"
    assert not (run / "run.json").exists() or json.loads((run / "run.json").read_text())["status"] != "done"
    proc = subprocess.run([sys.executable, "-m", "dreamer.cli", "resume", str(run)], capture_output=True, text=True,
                          cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stage 3/3 texture" in proc.stderr
    for folder, kind, steps in [(nerf_stage, "nerf", 40), (mesh_stage, "mesh", 60), (run, "texture", 10)]:
        state = json.loads((folder / "run.json").read_text())
        assert (state["status"], state["step"]) == ("done", steps), folder
        assert f"type: {kind}" in (folder / "config.yaml").read_text()
    rows = (mesh_stage / "metrics.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 61))  # resumed from step 50: no gap, no duplicate
    assert validate_gltf(run / "model.glb")["issues"]["numErrors"] == 0
    painted, shape = (trimesh.load_mesh(p / "model.glb") for p in (run, mesh_stage))
    assert len(painted.faces) == len(shape.faces) and abs(painted.area - shape.area) < 1e-3 * shape.area
    assert painted.visual.material.baseColorTexture.size == (128, 128)
