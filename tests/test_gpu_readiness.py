"""#18's CPU-side checks of the CUDA paths: kernel builds that fail or are missing give one line
(or a fallback under backend=auto), and CUDA-only backends draw with the PyTorch path off CUDA
outside training (evaluation and export after a GPU run)."""
import importlib

import pytest
import torch

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
