"""Hostile and careless input (issue 14): every probe ends in exit 0, or in exit 2 with one line,
no traceback and nothing written or changed. Values are data: nothing is interpolated."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

# Small enough that a whole run (train, evaluate, export) takes seconds.
TINY = ["camera.width=[32]", "camera.height=[32]", "camera.eval_resolution=32", "export.resolution=32",
        "export.texture_size=64", "export.faces=500", "export.turntable_frames=2", "prior.refs_per_object=16",
        "trainer.val_every=50"]


def dreamer(*args, env=None, timeout=300):
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "dreamer.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=full, timeout=timeout)


def one_line_error(proc, pattern=""):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert pattern in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict:
    """Every file under folder with its bytes: 'nothing changed' is an equal snapshot."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- 1, 3, 4, 6, 7, 9, 11: refused before anything is written --------------------------------------

PROBES = [
    # 2: non-finite numbers are refused at load
    (["guidance.guidance_scale=.nan"], "guidance.guidance_scale must be a finite number"),
    (["optimizer.lr_encoding=.inf"], "optimizer.lr_encoding must be a finite number"),
    (["guidance.max_step_percent=[0,0.9,.nan,100]"], "must be a finite number"),
    (["guidance.guidance_scale=1e300"], "guidance.guidance_scale must be at most 1000"),
    (["guidance.guidance_scale=-3"], "guidance.guidance_scale must be at least 0"),
    # 3: values that used to crash after the run folder existed
    (["--seed", "20000000000000"], "seed must be at most 2147483647"),
    (["trainer.checkpoint_every=0"], "trainer.checkpoint_every must be at least 1"),
    (["trainer.val_every=0"], "trainer.val_every must be at least 1"),
    (["camera.width=[-64]"], "camera.width: every value must be at least 8"),
    (["camera.width=[abc]"], "camera.width must be a list of integers"),
    (["camera.width=[]"], "camera.width must not be empty"),
    (["camera.batch_size=0"], "camera.batch_size must be at least 1"),
    (["renderer.num_samples_per_ray=0"], "renderer.num_samples_per_ray must be at least 1"),
    (["threads=-1"], "threads must be at least 0"),
    (["prior.refs_per_object=0"], "prior.refs_per_object must be at least 1"),
    (["geometry.radius=0"], "geometry.radius must be above 0"),
    (["export.texture_size=-1"], "export.texture_size must be at least 16"),
    (["export.turntable_frames=0"], "export.turntable_frames must be at least 1"),
    (["export.turntable_fps=0"], "export.turntable_fps must be at least 1"),
    (["--height", "0"], "export.height must be above 0"),
    (["--height", "nan"], "export.height must be a finite number"),
    (["--height", "tall"], "argument --height: invalid float value: 'tall'"),
    (["--pivot", "top"], "unknown export.pivot 'top'; choose one of: base, center"),
    (["export.formats=[glb,fbx]"], "export.formats"),
    # 4: sizes beyond the machine's memory, with the estimate
    (["camera.width=[100000]", "camera.height=[100000]"], "one training render"),
    (["camera.eval_resolution=100000"], "the evaluation and turntable views at 100000²"),
    (["export.resolution=100000"], "the export grid at 100000³ needs about"),
    (["export.texture_size=100000"], "a 100000² texture needs about"),
    # 6: parsing
    (["trainer.max_steps=[1,2"], "the value of override trainer.max_steps is not valid YAML"),
    (["guidance.negative_prompt=a dragon"], 'guidance.negative_prompt: the toy prior does not know "a dragon"'),
    # 11: minor
    (["--config", "/etc/passwd"], "must hold a mapping of keys"),
    (["--out", ""], "--out is empty"),
]


def dreamer_in_process(*args):
    """The CLI's main() in this process (as the subprocess runs it, without its start-up time)."""
    import contextlib
    import io

    from dreamer.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])  # an exception here fails the test with its traceback
    return subprocess.CompletedProcess(args, code, "", err.getvalue())


@pytest.mark.parametrize("args, pattern", PROBES, ids=[" ".join(a) for a, _ in PROBES])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, args, pattern):
    out = tmp_path / "run"
    argv = ["generate", "a rubber duck", *args] + ([] if "--out" in args else ["--out", out])
    line = one_line_error(dreamer_in_process(*argv), pattern)
    assert len(line) < 400 and "root:x:" not in line
    assert not out.exists()


def test_a_long_unknown_prompt_gets_a_short_line(tmp_path):
    line = one_line_error(dreamer("generate", "a " + "dragon " * 1500, "--out", tmp_path / "run"), "does not know")
    assert len(line) < 600 and not (tmp_path / "run").exists()


def test_out_under_proc_is_refused(tmp_path):
    line = one_line_error(dreamer("generate", "a rubber duck", "--out", "/proc/dreamer-x", *TINY))
    assert "/proc/dreamer-x" in line and not Path("/proc/dreamer-x").exists()


def test_recipe_extends_must_name_files(tmp_path):
    (tmp_path / "five.yaml").write_text("extends: 5\nprompt: a rubber duck\n")
    one_line_error(dreamer("generate", "a rubber duck", "--config", tmp_path / "five.yaml", "--out", tmp_path / "r"),
                   "extends must be a file name or a list of file names")
    assert not (tmp_path / "r").exists()


def test_recipe_extends_a_list_in_order(tmp_path):
    from dreamer.config import build_config
    (tmp_path / "a.yaml").write_text("seed: 1\ntrainer:\n  max_steps: 10\n")
    (tmp_path / "b.yaml").write_text("seed: 2\ntrainer:\n  val_every: 5\n")
    (tmp_path / "c.yaml").write_text("extends: [a.yaml, b.yaml]\ntrainer:\n  checkpoint_every: 7\n")
    cfg = build_config(tmp_path / "c.yaml")
    assert (cfg.seed, cfg.trainer.max_steps, cfg.trainer.val_every, cfg.trainer.checkpoint_every) == (2, 10, 5, 7)


def test_prior_folder_whose_model_index_is_a_list(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "model_index.json").write_text("[1, 2]")
    one_line_error(dreamer("generate", "a hamburger", "--prior", tmp_path / "p", "--out", tmp_path / "r"),
                   "holds a JSON list")
    assert not (tmp_path / "r").exists()


def test_prior_folder_without_its_parts_writes_nothing(tmp_path):
    folder = tmp_path / "partial-sd"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"]}))
    one_line_error(dreamer("generate", "a hamburger", "--prior", folder, "--out", tmp_path / "r"),
                   "but has no files for them")
    assert not (tmp_path / "r").exists()


def test_a_degenerate_object_mesh(tmp_path):
    mesh = tmp_path / "flat.obj"
    mesh.write_text("v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n")
    one_line_error(dreamer("generate", "a flat thing", "--object", mesh, "--out", tmp_path / "r",
                           env={"DREAMER_CACHE": str(tmp_path / "cache")}), "is degenerate")
    assert not (tmp_path / "r").exists()


def test_a_truncated_mesh_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    import trimesh

    from dreamer.toy.user_objects import load_mesh_object
    monkeypatch.setenv("DREAMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("dreamer.toy.user_objects.GRID", 16)  # the rule, not the resolution, is under test
    trimesh.creation.icosphere(subdivisions=2).export(tmp_path / "ball.ply")
    first = load_mesh_object({"name": "ball", "mesh": "ball.ply"}, tmp_path)
    (entry,) = (tmp_path / "cache" / "toy-meshes").glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:100])
    again = load_mesh_object({"name": "ball", "mesh": "ball.ply"}, tmp_path)
    assert (again.sdf_grid - first.sdf_grid).abs().max() < 1e-6
    assert len(entry.read_bytes()) > 1000  # rewritten whole


# -- 1: user text is data -----------------------------------------------------------------------------

def test_interpolation_syntax_stays_literal_through_the_cli(tmp_path):
    secret = {"SECRET_TOKEN": "hunter2", "DREAMER_CACHE": os.environ.get("DREAMER_CACHE", str(tmp_path / "c"))}
    line = one_line_error(dreamer("generate", "${oc.env:SECRET_TOKEN}", "--out", tmp_path / "a", env=secret))
    assert "${oc.env:SECRET_TOKEN}" in line and "hunter2" not in line and not (tmp_path / "a").exists()
    out = tmp_path / "b"
    proc = dreamer("generate", "a rubber duck ${oc.env:SECRET_TOKEN}", "--steps", 1, "--out", out, *TINY,
                   "guidance.negative_prompt=a snowman ${oc.env:SECRET_TOKEN} ${prompt}", "export.formats=[glb]", env=secret)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (out / "config.yaml").read_text()
    assert "a rubber duck ${oc.env:SECRET_TOKEN}" in text and "a snowman ${oc.env:SECRET_TOKEN} ${prompt}" in text
    assert not any(b"hunter2" in data for data in snapshot(out).values())
    from dreamer.runs import RunDir
    assert RunDir.open(out).config().prompt == "a rubber duck ${oc.env:SECRET_TOKEN}"  # and reads back literal


def test_interpolation_syntax_stays_literal_through_the_ui_form(monkeypatch):
    from dreamer.config import build_config, to_dict
    from dreamer.errors import UserError
    from dreamer.ui.app import job_config
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    with pytest.raises(UserError) as err:
        job_config("${oc.env:SECRET_TOKEN}", "toy", "sds", "nerf", 4, 0, 0)
    assert "hunter2" not in str(err.value) and "${oc.env:SECRET_TOKEN}" in str(err.value)
    cfg, _ = job_config("a rubber duck ${oc.env:SECRET_TOKEN}", "toy", "sds", "nerf", 4, 0, 0)
    worker_cfg = build_config(None, None, to_dict(cfg))  # what the worker process builds from the job
    assert worker_cfg.prompt == "a rubber duck ${oc.env:SECRET_TOKEN}"


def test_ui_form_bounds(monkeypatch):
    from dreamer.errors import UserError
    from dreamer.ui.app import job_config
    for seed, scale, pattern in [(None, 0, "seed must be a whole number"), (0.5, 0, "seed must be a whole number"),
                                 (0, -2, "guidance_scale must be at least 0"),
                                 (0, 1e300, "guidance_scale must be at most 1000"),
                                 (0, float("nan"), "guidance_scale must be a finite number")]:
        with pytest.raises(UserError, match=pattern):
            job_config("a rubber duck", "toy", "sds", "nerf", 4, seed, scale)


# -- 2: non-finite steps are skipped and counted --------------------------------------------------------

def _nan_after(monkeypatch, bad_steps):
    """Make SDS's gradient NaN at the given steps, as a broken prior or an overflow would."""
    import torch

    from dreamer.guidance.sds import SDSGuidance
    real = SDSGuidance.gradient

    def gradient(self, x, cond, generator=None):
        g, t = real(self, x, cond, generator)
        return (g * float("nan"), t) if self.step in bad_steps else (g, t)
    monkeypatch.setattr(SDSGuidance, "gradient", gradient)
    return torch


def test_nan_steps_are_skipped_and_counted(tmp_path, monkeypatch):
    from dreamer.config import build_config
    from dreamer.pipeline import generate
    _nan_after(monkeypatch, {2, 3, 5})
    cfg = build_config(ROOT / "configs" / "sds-nerf.yaml", TINY + ["prompt=a rubber duck", "trainer.max_steps=8",
                                                                  "export.formats=[glb]"])
    run, _ = generate(cfg, str(tmp_path / "run"), progress=False)
    state = run.state()
    assert state["status"] == "done" and state["skipped_steps"] == 3
    rows = (run.path / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    skipped = [int(float(r.split(",")[head.index("skipped")])) for r in rows[1:]]
    assert skipped[-1] == 3 and skipped == sorted(skipped)


def test_a_run_of_nan_steps_stops_with_the_divergence_message(tmp_path, monkeypatch):
    from dreamer.config import build_config
    from dreamer.errors import UserError
    from dreamer.pipeline import generate
    from dreamer.runs import RunDir
    _nan_after(monkeypatch, set(range(3, 100)))
    cfg = build_config(ROOT / "configs" / "sds-nerf.yaml", TINY + ["prompt=a rubber duck", "trainer.max_steps=30",
                                                                  "trainer.max_consecutive_bad_steps=5"])
    with pytest.raises(UserError, match="training diverged: 6 steps in a row had NaN/Inf gradients at step 8"):
        generate(cfg, str(tmp_path / "run"), progress=False)
    state = RunDir.open(tmp_path / "run").state()
    assert state["status"] == "failed" and state["skipped_steps"] == 6 and "diverged" in state["error"]


# -- 5, 8, 11: damaged checkpoints, temp files, raised max_steps ------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "run"
    proc = dreamer("generate", "a rubber duck", "--steps", 3, "--out", out, *TINY, "trainer.checkpoint_every=1",
                   "trainer.keep_checkpoint_every=2", "export.formats=[glb]", "export.turntable=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    shutil.copytree(finished_run, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
@pytest.mark.parametrize("command", ["resume", "export"])
def test_a_damaged_checkpoint_is_refused_and_changes_nothing(run_copy, damage, command):
    last = run_copy / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:4000] if damage == "truncated" else b"\x00not a checkpoint" * 50)
    before = snapshot(run_copy)
    line = one_line_error(dreamer(command, run_copy), "is damaged or not a dreamer checkpoint")
    assert "step-000002.ckpt" in line  # the newest intact fallback is offered
    assert snapshot(run_copy) == before and json.loads((run_copy / "run.json").read_text())["status"] == "done"


def test_export_options_are_checked_before_anything_is_written(run_copy):
    before = snapshot(run_copy)
    one_line_error(dreamer("export", run_copy, "--height", "-2"), "export.height must be above 0")
    one_line_error(dreamer("export", run_copy, "--format", "glb,stl"), "export.formats")
    assert snapshot(run_copy) == before


def test_usdz_without_usd_core_is_refused_before_anything_is_written(run_copy, monkeypatch):
    import dreamer.pipeline
    monkeypatch.setattr(dreamer.pipeline, "usd_available", lambda: False)
    before = snapshot(run_copy)
    one_line_error(dreamer_in_process("export", run_copy, "--format", "glb,usdz"), "pip install usd-core")
    assert snapshot(run_copy) == before


def test_a_planted_pickle_does_not_run(run_copy, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    import pickle
    import torch
    state = torch.load(run_copy / "checkpoints" / "last.ckpt", weights_only=True)
    state["dreamer"]["extra"] = Exploit()
    with open(run_copy / "checkpoints" / "last.ckpt", "wb") as f:
        pickle.dump(state, f)
    one_line_error(dreamer("export", run_copy), "is damaged or not a dreamer checkpoint")
    assert not marker.exists()


def test_resume_removes_temp_files_and_follows_raised_max_steps(run_copy):
    stale = run_copy / ".turntable.mp4.ab3k_9zq.mp4"
    stale.write_bytes(b"")
    (run_copy / "checkpoints" / ".last.ckpt.x1y2z3w4.ckpt").write_bytes(b"half")
    text = (run_copy / "config.yaml").read_text()
    (run_copy / "config.yaml").write_text(text.replace("max_steps: 3", "max_steps: 4"))
    proc = dreamer("resume", run_copy)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = json.loads((run_copy / "run.json").read_text())
    assert state["max_steps"] == 4 and state["step"] == 4 and state["status"] == "done"
    assert not stale.exists() and not list(run_copy.rglob(".*.ckpt"))


def test_a_run_in_use_is_refused_and_free_again_after_a_kill(run_copy):
    """A second process may not train or export a run that another one holds (it would delete that
    one's half-written files); a kill -9 of the holder frees the run at once."""
    half_written = run_copy / "checkpoints" / ".last.ckpt.x1y2z3w4.ckpt"
    half_written.write_bytes(b"half")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from dreamer.runs import RunDir\n"
                               "with RunDir(sys.argv[1]).hold():\n print('held', flush=True); time.sleep(600)",
                               str(run_copy)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(run_copy)
        for command in ("resume", "export"):
            one_line_error(dreamer(command, run_copy), "is in use by another dreamer process")
        assert snapshot(run_copy) == before and half_written.exists()
    finally:
        holder.kill()
        holder.wait()
    proc = dreamer("export", run_copy, "--format", "glb", "--no-turntable")
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- 10: the UI's workers never outlive it ---------------------------------------------------------------

def test_runs_no_process_holds_are_marked_interrupted(tmp_path):
    """A run that says it is running is marked interrupted when no process holds its folder, even if
    run.json's pid is alive (a pid reused after a reboot); one that a process holds is left alone."""
    from dreamer.runs import RunDir
    from dreamer.ui.jobs import mark_stale_runs
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name, status, pid in [("gone", "running", dead.pid), ("new", "created", dead.pid),
                              ("reused", "running", os.getpid()), ("live", "running", dead.pid),
                              ("done", "done", dead.pid)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text("prompt: x\n")
        (tmp_path / name / "run.json").write_text(json.dumps({"status": status, "pid": pid}))
    with RunDir(tmp_path / "live").hold():
        assert sorted(p.name for p in mark_stale_runs(tmp_path)) == ["gone", "new", "reused"]
    status = {n: json.loads((tmp_path / n / "run.json").read_text())["status"]
              for n in ("gone", "new", "reused", "live", "done")}
    assert status == {"gone": "interrupted", "new": "interrupted", "reused": "interrupted", "live": "running",
                      "done": "done"}
    with RunDir(tmp_path / "gone").hold():  # the marking let go of the folders it marked
        pass


def test_a_worker_ends_when_its_server_is_killed_9():
    """No signal handler sees kill -9: the worker itself notices that its server is gone."""
    import signal
    import time
    child = ("from dreamer.ui.jobs import _exit_with_parent; _exit_with_parent(); "
             "import time; time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               f"p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
                               "print(p.pid, flush=True); time.sleep(120)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    time.sleep(2)  # the worker is up and watching
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 15
    while Path(f"/proc/{worker}").exists() and "zombie" not in _status(worker):
        assert time.time() < deadline, "the worker outlived its server"
        time.sleep(0.2)


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return "zombie"
