import math

import pytest
import torch

from dreamer.cameras import make_cameras
from dreamer.config import BackgroundConfig, RendererConfig
from renderers.background import Background
from renderers.volume import ShadingSpec, VolumeRenderer


class ConstantBall(torch.nn.Module):
    """Density `sigma` inside a ball of radius r, albedo a constant colour."""

    def __init__(self, sigma=50.0, r=0.5):
        super().__init__()
        self.sigma, self.r = sigma, r
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def density(self, p):
        return torch.where(p.norm(dim=-1) < self.r, self.sigma, 0.0) + 0 * self.dummy

    def query(self, p):
        return self.density(p), torch.tensor([1.0, 0.0, 0.0]).expand(p.shape[0], 3)

    def normals(self, p):
        return torch.nn.functional.normalize(p, dim=-1)


def render(field, grid_update=False, res=33, **kw):
    cfg = RendererConfig(num_samples_per_ray=256, **kw)
    r = VolumeRenderer(cfg, 1.0)
    if grid_update:
        r.grid.update(field.density)
    cams = make_cameras([0.0], [0.0], [2.0], [40.0], res, res)
    bg = Background(BackgroundConfig(color=[0.0, 0.0, 1.0]))
    with torch.no_grad():
        return r(field, bg, cams, ShadingSpec("albedo")), cams


def test_opacity_matches_beer_lambert_through_a_ball():
    field = ConstantBall()
    out, cams = render(field)
    c = out["opacity"][0, 16, 16, 0].item()  # centre ray crosses the full diameter
    assert c == pytest.approx(1 - math.exp(-50 * 1.0), abs=1e-3)
    assert out["depth"][0, 16, 16, 0].item() / c == pytest.approx(1.5 + 1 / 50, abs=0.02)
    corner = out["opacity"][0, 0, 0, 0].item()
    assert corner == 0.0
    # Colour: red where covered, the blue background elsewhere.
    assert torch.allclose(out["rgb"][0, 16, 16], torch.tensor([1.0, 0.0, 0.0]), atol=1e-3)
    assert torch.allclose(out["rgb"][0, 0, 0], torch.tensor([0.0, 0.0, 1.0]))


def test_occupancy_grid_skips_empty_space_without_changing_the_image():
    field = ConstantBall(r=0.3)
    full, _ = render(field)
    culled, _ = render(field, grid_update=True, occupancy_resolution=32)
    assert torch.allclose(full["opacity"], culled["opacity"], atol=1e-5)
    r = VolumeRenderer(RendererConfig(occupancy_resolution=32), 1.0)
    r.grid.update(field.density)
    assert r.grid.occupied_fraction() < 0.05  # a 0.3 ball (+1 cell) in a 2-wide cube


def test_deferred_normals_point_out_of_the_ball():
    field = ConstantBall()
    cfg = RendererConfig(num_samples_per_ray=128)
    r = VolumeRenderer(cfg, 1.0)
    cams = make_cameras([0.0], [0.0], [2.0], [40.0], 17, 17)
    out = r(field, Background(BackgroundConfig()), cams, ShadingSpec("shaded"))
    n = out["normal"][0, 8, 8]
    assert torch.allclose(n, torch.tensor([0.0, 0.0, 1.0]), atol=0.05)  # faces the camera on +Z


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nerfacc's marching kernels need a CUDA GPU")
def test_nerfacc_path_matches_the_torch_reference_on_cuda():
    from dreamer.config import GeometryConfig
    from dreamer.geometry.nerf import NeRFField
    torch.manual_seed(0)
    field = NeRFField(GeometryConfig()).cuda()
    cams = make_cameras([10.0, 30.0], [0.0, 120.0], [2.0, 2.0], [40.0, 40.0], 32, 32)
    bg = Background(BackgroundConfig()).cuda()
    outs = {}
    for backend in ("torch", "nerfacc"):
        r = VolumeRenderer(RendererConfig(num_samples_per_ray=128, backend=backend), 1.0).cuda()
        r.grid.update(field.density)
        with torch.no_grad():
            outs[backend] = r(field, bg, cams, ShadingSpec("shaded"))
    for key in ("opacity", "rgb"):
        assert torch.allclose(outs["torch"][key], outs["nerfacc"][key], atol=2e-2), key
