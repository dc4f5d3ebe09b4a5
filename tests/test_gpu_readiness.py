"""#18's CPU-side checks of the CUDA paths: kernel builds that fail or are missing give one line
(or a fallback under backend=auto), and CUDA-only backends draw with the PyTorch path off CUDA
outside training (evaluation and export after a GPU run)."""
import importlib
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from dreamer.cameras import make_cameras
from dreamer.config import BackgroundConfig, GaussianConfig, RendererConfig
from dreamer.errors import UserError
from renderers import cuda_kernels
from renderers.background import Background
from renderers.gaussian import GaussianRenderer
from renderers.volume import ShadingSpec, VolumeRenderer

CUDA = torch.device("cuda")  # a device object only: nothing below allocates on it


@pytest.fixture
def failing_builds(monkeypatch):
    """Both packages' kernel builds fail as a compiler error would."""
    real = importlib.import_module

    def import_module(name, *args):
        if name.endswith(".cuda._backend"):
            raise RuntimeError("Error building extension 'gsplat_cuda': ninja: build stopped: subcommand failed.")
        return real(name, *args)
    monkeypatch.setattr(cuda_kernels.importlib, "import_module", import_module)
    monkeypatch.setattr(cuda_kernels, "_reasons", {})


def test_a_failed_kernel_build_is_a_reason_not_a_crash(failing_builds):
    said = []
    reason = cuda_kernels.kernels_missing("gsplat", said.append)
    assert reason.startswith("their build failed (RuntimeError: Error building extension")
    assert len(said) == 1 and "first build takes minutes" in said[0]
    assert cuda_kernels.kernels_missing("gsplat", said.append) == reason and len(said) == 1  # once per process


def test_nerfacc_kernels_that_cannot_build_here_give_a_reason():
    """The real import on a machine without CUDA: nerfacc either finds no nvcc and leaves _C None
    (every call then failed with AttributeError: 'NoneType' object has no attribute
    'traverse_grids') or tries a build that raises. Either way: one line, no exception."""
    if torch.cuda.is_available():
        pytest.skip("a machine with CUDA may build them")
    cuda_kernels._reasons.pop("nerfacc", None)
    reason = cuda_kernels.kernels_missing("nerfacc")
    assert reason and "\n" not in reason
    assert reason.startswith(("no CUDA toolkit", "their build failed ("))


def test_gsplat_auto_falls_back_with_one_warning_and_explicit_fails_in_one_line(failing_builds, capsys):
    auto = GaussianRenderer(GaussianConfig(backend="auto"))
    assert auto.use_gsplat(CUDA, training=True) is False
    assert auto.use_gsplat(CUDA, training=True) is False
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "rendering Gaussians with dreamer's PyTorch rasterizer" in warning[0]
    explicit = GaussianRenderer(GaussianConfig(backend="gsplat"))
    with pytest.raises(UserError, match="backend=gsplat but gsplat's CUDA kernels are unavailable: their build failed"):
        explicit.prepare(CUDA)


def test_nerfacc_without_kernels_fails_in_one_line(failing_builds):
    renderer = VolumeRenderer(RendererConfig(backend="nerfacc"), 1.0)
    with pytest.raises(UserError, match="renderer.backend=nerfacc but nerfacc's CUDA kernels are unavailable"):
        renderer.prepare(CUDA)


def test_cuda_only_backends_render_for_people_off_cuda_but_do_not_train():
    """finish() used to move a GPU run to the CPU, where its nerfacc/gsplat backend refused to draw
    the evaluation and the turntable. Off CUDA, renders without grad take the PyTorch path."""
    from dreamer.config import GeometryConfig
    from dreamer.geometry.nerf import NeRFField
    torch.manual_seed(0)
    field = NeRFField(GeometryConfig())
    cams = make_cameras([10.0], [30.0], [2.0], [40.0], 16, 16)
    bg = Background(BackgroundConfig())
    images = {}
    for backend in ("torch", "nerfacc"):
        renderer = VolumeRenderer(RendererConfig(num_samples_per_ray=32, backend=backend), 1.0)
        with torch.no_grad():
            images[backend] = renderer(field, bg, cams, ShadingSpec("albedo"))["rgb"]
    assert torch.equal(images["torch"], images["nerfacc"])
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        renderer(field, bg, cams, ShadingSpec("albedo"), randomized=True)  # a training render
    gaussians = GaussianRenderer(GaussianConfig(backend="gsplat"))
    with torch.no_grad():
        assert gaussians.use_gsplat(torch.device("cpu")) is False
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        gaussians.use_gsplat(torch.device("cpu"))


def test_device_draws_are_the_step_generators_own_on_the_cpu():
    """#18 item 7: big random tensors are drawn on their device; on the CPU nothing changes, so CPU
    runs stay what they were, bit for bit (a CUDA draw is seeded by one number from the step's
    generator: scripts/gpu-check runs it)."""
    from dreamer import draws
    g = torch.Generator().manual_seed(3)
    assert draws.device_generator(g, "cpu") is g and draws.device_generator(None, "cuda") is None
    like = torch.zeros((), dtype=torch.float64)
    got = draws.rand((5, 7), torch.Generator().manual_seed(3), like)
    assert got.dtype == torch.float64 and torch.equal(got, torch.rand((5, 7), generator=g).double())
    assert torch.equal(draws.randn(4, torch.Generator().manual_seed(1), like.float()),
                       torch.randn(4, generator=torch.Generator().manual_seed(1)))


def test_schedule_tables_are_copied_to_a_device_once():
    from dreamer.config import GuidanceConfig
    from dreamer.guidance import build_guidance
    from dreamer.priors.base import sd_alphas_cumprod

    class Prior:
        alphas_cumprod = sd_alphas_cumprod().float()
        num_timesteps = 1000
    guidance = build_guidance(GuidanceConfig(method="sds"), Prior(), 10)
    t = torch.tensor([10, 500])
    first = guidance._table("sigma", t.device)
    guidance.add_noise(torch.zeros(2, 4, 8, 8), t, torch.ones(2, 4, 8, 8))
    assert guidance._table("sigma", t.device) is first
    assert torch.equal(guidance.sigma(t, torch.zeros(2, 1)).squeeze(1), (1 - guidance.abar[t]).sqrt().float())


def test_bench_splats_times_ours_and_dense_and_tabulates_gsplat_when_given():
    from dreamer.bench import splats
    rows = splats.run(counts=(200,), sizes=(16,), repeats=1, say=lambda m: None, device="cpu")
    assert len(rows) == 1 and rows[0]["ours_s"] > 0 and rows[0]["dense_s"] > 0 and "gsplat_s" not in rows[0]
    assert "gsplat" not in splats.table(rows, 1, 4)
    rows[0]["gsplat_s"] = rows[0]["ours_s"] / 8  # as a CUDA run would add it
    text = splats.table(rows, 1, 4)
    assert "| gsplat | gsplat vs ours |" in text and "| 8.0× faster |" in text


# -- scripts/gpu-check: its CPU-side parts ------------------------------------------------------------

GPU_CHECK = ROOT / "scripts" / "gpu-check"


def gpu_check(*args, **env):
    return subprocess.run([str(GPU_CHECK), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def test_gpu_check_dry_run_lists_every_step_and_runs_nothing(tmp_path):
    proc = gpu_check("--dry-run", "--skip", "bench-splats", "--out", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 12 and "within 8 minutes" in lines[0]
    assert lines[5].startswith("  5. guidance:") and "VSD/ESD/DSD 30 steps" in lines[5]
    assert lines[10] == "  10. bench-splats: (left out)"
    assert lines[11].startswith("  11. bench-raster:") and "nvdiffrast" in lines[11]
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("args, message", [
    (["--only", "env,nope"], "unknown step 'nope'; steps are: env install"),
    (["--minutes", "soon"], "--minutes must be a whole number"),
    (["--frobnicate"], "unknown argument '--frobnicate'"),
    (["--out"], "--out needs a folder"),
])
def test_gpu_check_refuses_bad_arguments_in_one_line(args, message, tmp_path):
    proc = gpu_check(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"gpu-check: {proc.stderr.strip()[len('gpu-check: '):]}"]
    assert message in proc.stderr


def test_gpu_check_writes_a_report_of_every_step_failed_or_not(tmp_path):
    """On a CPU the env step works and the draws step (on cuda) fails: both are in the report, the
    summary counts the failure, and the exit code says so."""
    proc = gpu_check("--only", "env,draws", "--out", str(tmp_path))
    report = (tmp_path / "gpu-check.md").read_text()
    assert proc.returncode == (0 if torch.cuda.is_available() else 1)
    assert "## env: ok" in report and f"torch {torch.__version__}" in report
    if not torch.cuda.is_available():
        assert "## draws: FAILED (exit 1)" in report and "1 step(s) failed" in report
    assert "## guidance" not in report  # left out by --only
    assert (tmp_path / "gpu-check.log").stat().st_size > 0


def test_the_fp16_guidance_step_runs_vsd_without_a_skipped_step_on_a_cpu(tmp_path):
    """The step gpu-check runs on the GPU, small, with an fp16 UNet on the CPU: before the fake
    score's weights were fp32 it diverged at its first step."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "guidance", "--device", "cpu",
                           "--methods", "sds,vsd", "--steps", "1", "--fake-steps", "4", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| vsd") or ln.startswith("| sds")]
    assert len(rows) == 2 and all("| 0 | yes |" in r for r in rows)
    assert "UNet torch.float16" in proc.stdout and "loss scale 65536" in rows[1]


def test_the_resume_step_kills_a_gaussian_run_inside_densification_and_finishes_it(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "resume", "--steps", "30",
                           "--kill-after", "18", "--out", str(tmp_path), "geometry.gaussians.densify.refine_start_iter=10",
                           "geometry.gaussians.densify.refine_every=5", "camera.eval_resolution=32", "export.resolution=48"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = proc.stdout.strip().splitlines()[-1].split("|")
    killed_at, rc, final, status = int(row[2]), int(row[3]), int(row[4]), row[5].strip()
    assert 18 <= killed_at < 30 and rc == 0 and final == 30 and status == "done"
