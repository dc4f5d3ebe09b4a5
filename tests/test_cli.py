"""Bad input: exit code 2, one line on stderr, no traceback, nothing written."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def dreamer(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "dreamer.cli", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=120)


def assert_one_line_error(proc, pattern):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize("args, pattern", [
    (["generate", ""], "prompt is empty"),
    (["generate", "   "], "prompt is empty"),
    (["generate", "a dragon"], 'does not know "a dragon"'),
    (["generate", "a rubber duck", "trainer.max_step=3"], "did you mean 'trainer.max_steps'"),
    (["generate", "a rubber duck", "trainer.max_steps=many"], "must be an integer"),
    (["generate", "a rubber duck", "--steps", "0"], "steps must be a positive integer"),
    (["generate", "a rubber duck", "--steps", "-5"], "steps must be a positive integer"),
    (["generate", "a rubber duck", "--steps", "ten"], "invalid int value"),
    (["generate", "a rubber duck", "--method", "magic"], "unknown method 'magic'"),
    (["generate", "a rubber duck", "guidance.weighting=cubic"], "unknown guidance.weighting 'cubic'"),
    (["generate", "a rubber duck", "export.formats=[glb,fbx]"], "unknown export.formats 'fbx'"),
    (["generate", "a rubber duck", "--representation", "voxels"], "unknown representation"),
    (["generate", "a rubber duck", "--prior", "some/model"], "hf download some/model"),
    (["generate", "a rubber duck", "--prior", "./no-such-folder"], "prior folder ./no-such-folder does not exist"),
    (["generate", "a rubber duck", "prior.dtype=fp8"], "unknown prior.dtype 'fp8'"),
    (["generate", "a rubber duck", "--config", "nope.yaml"], "does not exist"),
    (["generate", "a rubber duck", "--method", "vsd", "guidance.particles=0"], "particles must be at least 1"),
    (["generate", "a rubber duck", "--method", "ism", "guidance.interval.inversion_stride=0"], "inversion_stride"),
    (["generate", "a rubber duck", "--method", "esd", "guidance.entropy_weigth=0.3"],
     "did you mean 'guidance.entropy_weight'"),
    (["generate", "a rubber duck", "geometry.pos_encoding.backend=tinycudann"],
     "backend=tinycudann but this machine has no CUDA GPU"),
    (["generate", "a rubber duck", "renderer.backend=nerfacc"], "renderer.backend=nerfacc needs a CUDA GPU"),
    (["generate", "a rubber duck", "--representation", "gaussians", "geometry.gaussians.backend=gsplat"],
     "geometry.gaussians.backend=gsplat needs a CUDA GPU"),
    (["generate", "a rubber duck", "--representation", "mesh", "renderer.backend=nvdiffrast"],
     "renderer.backend=nvdiffrast but it needs a CUDA GPU"),
    (["generate", "a rubber duck", "renderer.backend=nvdiffrast"], "renderer.backend=nvdiffrast draws meshes"),
    (["generate", "a rubber duck", "--representation", "mesh", "renderer.backend=nerfacc"],
     "renderer.backend=nerfacc marches a NeRF's rays"),
    (["generate", "a rubber duck", "--coarse", "gaussians"], "previous stage of --representation mesh or texture"),
    (["generate", "a rubber duck", "--representation", "texture", "--coarse", "voxels"], "unknown geometry.texture.coarse"),
    (["generate", "a rubber duck", "--representation", "mesh", "--coarse", "voxels"], "unknown geometry.mesh.coarse"),
    (["generate", "a rubber duck", "--representation", "mesh", "geometry.mesh.coarse_recipe=nope.yaml"],
     "config file nope.yaml does not exist"),
    (["generate", "a rubber duck", "--representation", "mesh", "geometry.mesh.init=run"],
     "needs geometry.mesh.init_path"),
    (["generate", "a rubber duck", "--representation", "mesh", "geometry.mesh.resolution=4"],
     "resolution must be at least 8"),
    (["bench", "guidance", "--methods", "sds,magic"], "unknown method magic"),
    (["run", "--config", "configs/sds-nerf.yaml"], "prompt is empty"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_generate_input(tmp_path, args, pattern):
    out = tmp_path / "run"
    proc = dreamer(*args, "--out", str(out)) if args[0] in ("generate", "run") else dreamer(*args)
    assert_one_line_error(proc, pattern)
    assert not out.exists()


def test_output_path_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    assert_one_line_error(dreamer("generate", "a rubber duck", "--out", str(target)), "is a file")
    assert target.read_text() == "x"


def test_output_path_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root); covered by the under-a-file case")
        assert_one_line_error(dreamer("generate", "a rubber duck", "--out", str(locked / "run")), "cannot write")
    finally:
        locked.chmod(0o700)


def test_output_path_under_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(dreamer("generate", "a rubber duck", "--out", str(blocker / "run")), "under the file")


def test_existing_nonempty_output(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    assert_one_line_error(dreamer("generate", "a rubber duck", "--out", str(tmp_path)), "already exists")


@pytest.mark.parametrize("cmd", ["export", "resume", "refine", "texture"])
def test_not_a_run_folder(tmp_path, cmd):
    (tmp_path / "something.txt").write_text("x")
    before = sorted(os.listdir(tmp_path))
    assert_one_line_error(dreamer(cmd, str(tmp_path)), "is not a dreamer run folder")
    assert sorted(os.listdir(tmp_path)) == before


def test_export_bad_format(tmp_path):
    assert_one_line_error(dreamer("export", str(tmp_path), "--format", "fbx"), "not a dreamer run folder")


def test_method_flag_picks_the_method_recipe():
    from dreamer.recipes import generate_config
    cfg, _ = generate_config("a rubber duck", method="ism")
    assert cfg.guidance.method == "ism" and cfg.guidance.weighting == "rho" and cfg.loss.lambda_guidance == 0.1
    assert generate_config("a rubber duck", method="ism", config="sds-nerf.yaml")[0].guidance.weighting == "sds"  # an explicit recipe wins


@pytest.mark.parametrize("method, recipe", [(None, "dreamfusion-sd21.yaml"), ("vsd", "prolificdreamer-sd21.yaml"),
                                            ("esd", "prolificdreamer-esd-sd21.yaml"), ("ism", "luciddreamer-sd21.yaml"),
                                            ("tsm", "dreamerxl-sdxl.yaml"), ("csd", "csd-nerf.yaml")])
def test_a_real_prior_picks_the_published_recipe(method, recipe):
    """The toy recipes' scales suit the toy; with --prior <model> the method's published pairing runs."""
    from dreamer.recipes import generate_config
    cfg, path = generate_config("a hamburger", method=method, prior="some/model")
    assert path.name == recipe and cfg.prior.name == "some/model" and cfg.guidance.method == (method or "sds")


def test_a_real_prior_mesh_run_is_magic3d_coarse_to_fine():
    """--representation mesh with a real prior: Magic3D's recipe, a 64² NeRF then DMTet at 512²."""
    from dreamer.recipes import generate_config
    from dreamer.stages import coarse_config
    cfg, path = generate_config("a hamburger", representation="mesh", prior="some/model")
    assert path.name == "magic3d-sd21.yaml" and cfg.prior.name == "some/model"
    assert cfg.camera.width == [512] and cfg.geometry.mesh.resolution == 128
    assert cfg.loss.lambda_normal_consistency == 10000 and cfg.guidance.max_step_percent == 0.5
    coarse = coarse_config(cfg)
    assert coarse.geometry.type == "nerf" and coarse.camera.width == [64] and coarse.guidance.weighting == "uniform"
    assert coarse.prior.name == "some/model" and coarse.geometry.radius == cfg.geometry.radius == 2.0


def test_list_prompts():
    proc = dreamer("list-prompts")
    assert proc.returncode == 0
    assert "rubber duck" in proc.stdout and "[distinct front]" in proc.stdout
    assert len(proc.stdout.strip().splitlines()) >= 8


def test_refine_wants_a_finished_field_run(tmp_path):
    """dreamer refine on a run that has not finished: one line, and no new folder."""
    run = tmp_path / "duck"
    run.mkdir()
    (run / "config.yaml").write_text("prompt: a rubber duck\n")
    (run / "run.json").write_text('{"status": "running", "step": 3}')
    assert_one_line_error(dreamer("refine", str(run)), "has not finished")
    assert not (tmp_path / "duck-mesh").exists()
    (run / "run.json").write_text('{"status": "done", "step": 600}')
    assert_one_line_error(dreamer("refine", str(run), "--method", "magic"), "unknown method 'magic'")
    assert_one_line_error(dreamer("refine", str(run), "--steps", "0"), "steps must be a positive integer")


def test_texture_wants_a_finished_run_and_a_power_of_two(tmp_path):
    """dreamer texture on an unfinished run, or with a bad size or another texture run: one line, no new folder."""
    run = tmp_path / "duck"
    run.mkdir()
    (run / "config.yaml").write_text("prompt: a rubber duck\n")
    (run / "run.json").write_text('{"status": "running", "step": 3}')
    assert_one_line_error(dreamer("texture", str(run)), "has not finished")
    (run / "run.json").write_text('{"status": "done", "step": 600}')
    assert_one_line_error(dreamer("texture", str(run), "--size", "300"), "power of two")
    assert_one_line_error(dreamer("texture", str(run), "--size", "big"), "geometry.texture.size")
    (run / "config.yaml").write_text("prompt: a rubber duck\ngeometry:\n  type: texture\n")
    assert_one_line_error(dreamer("texture", str(run)), "dreamer texture takes a NeRF, Gaussian or mesh run")
    assert not (tmp_path / "duck-texture").exists()
