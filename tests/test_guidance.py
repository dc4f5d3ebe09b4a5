import pytest
import torch

from dreamer.config import GuidanceConfig
from dreamer.guidance.base import injection_loss
from dreamer.guidance.sds import SDSGuidance
from gaussian_prior import GaussianPrior
from test_guidance_family import conditioning


def test_injection_loss_gradient_is_g_over_B():
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    g = torch.randn(3, 2, 4, 4)
    injection_loss(x, g).backward()
    assert torch.allclose(x.grad, g / 3, atol=1e-6)


def test_timesteps_inclusive_bounds_and_schedule():
    cfg = GuidanceConfig(min_step_percent=0.02, max_step_percent=[5000, 0.98, 0.5, 5001])
    gd = SDSGuidance(cfg, GaussianPrior(resolution=4), 10000)
    t = gd.sample_t(20000, torch.Generator().manual_seed(0))
    assert t.min() == 20 and t.max() == 980 and t.dtype == torch.int64
    gd.update_step(5001)
    assert gd.max_step == 500
    gd.update_step(4999)
    assert gd.max_step == 980


def test_sqrt_anneal_is_deterministic_and_decreasing():
    cfg = GuidanceConfig(min_step_percent=0.3, max_step_percent=0.98, sqrt_anneal=True)
    gd = SDSGuidance(cfg, GaussianPrior(resolution=4), 100)
    ts = []
    for step in (0, 25, 100):
        gd.update_step(step)
        t = gd.sample_t(8)
        assert (t == t[0]).all()
        ts.append(int(t[0]))
    assert ts == [980, int(1000 * (0.3 + 0.68 * 0.5)), 300]


def test_weightings():
    gd = SDSGuidance(GuidanceConfig(weighting="fantasia3d"), GaussianPrior(resolution=4), 10)
    t = torch.tensor([100])
    abar = gd.abar[100]
    assert gd.weight(t).item() == pytest.approx((abar.sqrt() * (1 - abar)).item())
    gd.cfg.weighting = "uniform"
    assert gd.weight(t).item() == 1.0


def test_sds_equals_closed_form_and_cfg_convention():
    prior = GaussianPrior(resolution=4)
    cfg = GuidanceConfig(guidance_scale=3.0, min_step_percent=0.5, max_step_percent=0.5)
    gd = SDSGuidance(cfg, prior, 10)
    x = torch.randn(2, 1, 4, 4)
    c = conditioning(prior, 2)
    gen = torch.Generator().manual_seed(0)
    g, t = gd.gradient(x, c, gen)
    replay = torch.Generator().manual_seed(0)
    assert torch.equal(gd.sample_t(2, replay), t)
    noise = torch.randn(x.shape, generator=replay)
    x_t = gd.add_noise(x, t, noise)
    e_c, e_u = prior.predict_noise(x_t, t, c.cond), prior.predict_noise(x_t, t, c.null)
    expected = (1 - gd.abar[t]).reshape(-1, 1, 1, 1).float() * (e_u + 3.0 * (e_c - e_u) - noise)
    assert torch.allclose(g, expected, atol=1e-5)


def test_nan_guard_and_clip():
    gd = SDSGuidance(GuidanceConfig(grad_clip=[0, 2.0, 8.0, 100]), GaussianPrior(resolution=4), 100)
    g = torch.tensor([float("nan"), float("inf"), -50.0, 1.0])
    assert torch.equal(gd.finalize(g), torch.tensor([0.0, 0.0, -2.0, 1.0]))
    gd.update_step(50)
    assert gd.finalize(torch.tensor([100.0])).item() == pytest.approx(5.0)


def test_sds_drives_a_free_image_to_the_conditional_mode():
    """With an exact Gaussian prior and s = 1, SDS on a free image converges to the mean (spec 7)."""
    prior = GaussianPrior(resolution=4)
    gd = SDSGuidance(GuidanceConfig(guidance_scale=1.0), prior, 1000)
    x = torch.full((1, 1, 4, 4), 3.0, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.02)
    c = conditioning(prior, 1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(1500):
        opt.zero_grad()
        gd(x, c, gen)["loss_guidance"].backward()
        opt.step()
    assert x.mean().item() == pytest.approx(1.0, abs=0.05)
