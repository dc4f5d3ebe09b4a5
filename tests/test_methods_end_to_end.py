"""Guidance methods through `dreamer generate --method X`, as users run it: short runs that train,
export a GLB that passes the Khronos validator, and re-export from the checkpoint (which for VSD
also holds the fake score). Every method steps the same loop in process in
test_guidance_toy.py; what these runs add (the CLI, the recipe, export, the validator) does not
depend on the method, so four kinds stand for all: plain (SDS), a fake score (VSD), DDIM inversion
(ISM) and a fixed-noise schedule (CDS). The 300-step runs are `dreamer bench` territory (README:
Guidance methods). Marked slow."""
import json

import pytest

from conftest import ARTIFACTS, validate_gltf
from test_end_to_end import dreamer

pytestmark = pytest.mark.slow

# Enough steps for every method's schedule, fake-score training and bookkeeping to run in the
# loop; what the methods compute is held to closed forms in test_guidance_family.py.
STEPS = 12
SHORT = ["--steps", str(STEPS), "export.turntable=false", "export.resolution=48", "export.faces=2000",
         "export.texture_size=64", "camera.width=[48]", "camera.height=[48]"]


@pytest.mark.parametrize("method", ["sds", "vsd", "ism", "cds"])
def test_method_runs_end_to_end_and_exports_a_valid_glb(method, tmp_path):
    out = tmp_path / method
    proc = dreamer("generate", "a rubber duck", "--method", method, "--out", str(out), *SHORT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "run.json").read_text())
    assert state["status"] == "done" and state["step"] == STEPS and state.get("skipped_steps", 0) == 0
    assert json.loads(json.dumps(state["metrics"]))["silhouette_iou_8views"] > 0.3
    report = validate_gltf(out / "model.glb")
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    csv = (out / "metrics.csv").read_text().splitlines()
    nfe = [float(line.split(",")[4]) for line in csv[1:]]
    assert min(nfe) >= 2
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"method-{method}.json").write_text(json.dumps(
        {"method": method, "metrics": state["metrics"], "timings": state["timings"],
         "nfe_per_sample": sum(nfe) / len(nfe)}, indent=1))
    if method == "vsd":  # checkpoints with a fake score re-export without a prior
        again = dreamer("export", str(out), "--format", "glb", "--no-turntable")
        assert again.returncode == 0, again.stderr[-2000:]


def test_particles_share_one_fake_score_and_export_each(tmp_path):
    out = tmp_path / "particles"
    proc = dreamer("generate", "a rubber duck", "--method", "esd", "--out", str(out), *SHORT,
                   "--steps", "20", "guidance.particles=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model.glb").is_file() and (out / "particles" / "1" / "model.glb").is_file()
    metrics = json.loads((out / "run.json").read_text())["metrics"]
    assert len(metrics["silhouette_iou_8views_particles"]) == 2
    assert validate_gltf(out / "particles" / "1" / "model.glb")["issues"]["numErrors"] == 0


def test_particles_need_a_fake_score(tmp_path):
    proc = dreamer("generate", "a rubber duck", "--method", "sds", "--out", str(tmp_path / "x"),
                   "guidance.particles=2")
    assert proc.returncode == 2 and "fake score" in proc.stderr and not (tmp_path / "x").exists()
