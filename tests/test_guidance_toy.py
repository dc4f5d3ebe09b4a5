"""The guidance family on the toy prior: prompts and Perp-Neg, the fake score, and every method
stepping the real optimization loop."""
from __future__ import annotations

import math

import pytest
import torch

from dreamer.cameras import make_cameras
from dreamer.config import CONFIG_DIR, GuidanceConfig, build_config
from dreamer.guidance import METHODS
from dreamer.prompts import PromptProcessor, decay


def cams_at(azimuths, elevation=10.0):
    n = len(azimuths)
    return make_cameras(torch.full((n,), elevation), torch.tensor(azimuths, dtype=torch.float32),
                        torch.full((n,), 2.0), torch.full((n,), 40.0), 8, 8)


def test_perp_neg_blends_views_and_weights_the_others(small_prior):
    cfg = GuidanceConfig()
    cfg.perp_neg.enabled = True
    pp = PromptProcessor(small_prior, "a rubber duck", cfg, build_config().camera)
    c = pp(cams_at([0.0, 45.0, 90.0, 180.0]))
    front, side, back = (pp.view(v) for v in ("front", "side", "back"))
    assert torch.equal(c.cond[0], front) and torch.equal(c.cond[2], side) and torch.equal(c.cond[3], back)
    finite = torch.isfinite(front)
    assert torch.allclose(c.cond[1][finite], (0.5 * front + 0.5 * side)[finite])
    f = lambda p, r: -(p[0] * math.exp(-p[1] * r) + p[2])  # noqa: E731
    expected = [[f(cfg.perp_neg.f_fs, 1), f(cfg.perp_neg.f_sf, 0)],
                [f(cfg.perp_neg.f_fs, 0.5), f(cfg.perp_neg.f_sf, 0.5)],
                [f(cfg.perp_neg.f_sb, 1), f(cfg.perp_neg.f_fsb, 1)],
                [f(cfg.perp_neg.f_sb, 0), f(cfg.perp_neg.f_fsb, 0)]]
    assert torch.allclose(c.perp_neg_weights, torch.tensor(expected), atol=1e-6)
    assert abs(decay(cfg.perp_neg.f_fs, 1.0)) < 1e-3  # a pure front view has no front negative
    assert torch.equal(c.perp_neg_embeddings[3, 0], side) and torch.equal(c.perp_neg_embeddings[3, 1], front)
    top = pp(cams_at([30.0], elevation=70.0))
    assert torch.equal(top.cond[0], pp.view("overhead")) and (top.perp_neg_weights == 0).all()


def test_view_dependent_prompts_and_plain_prompt(small_prior):
    pp = PromptProcessor(small_prior, "a rubber duck", GuidanceConfig(), build_config().camera)
    c = pp(cams_at([0.0, 180.0]))
    assert torch.equal(c.cond[1], pp.view("back")) and torch.equal(c.plain[0], pp.embedding("a rubber duck"))
    assert torch.equal(c.negative, c.null) and c.camera.shape == (2, 16)


def test_toy_fake_score_starts_at_the_prior_and_learns_the_renders(small_prior):
    torch.manual_seed(0)
    fake = small_prior.make_fake_score(GuidanceConfig().fake_score)
    x0 = small_prior.refs.images[:4].permute(0, 3, 1, 2) if small_prior.refs.images.shape[-1] == 3 \
        else small_prior.refs.images[:4]
    x0 = x0 * 0.5  # "renders" the prior has not seen: dimmer copies of references
    emb = small_prior.embed(["a rubber duck"]).expand(4, -1)
    camera = torch.randn(4, 16)
    gen = torch.Generator().manual_seed(1)
    t = torch.randint(50, 950, (4,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    abar = small_prior.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    assert torch.allclose(fake(x_t, t, emb, camera), small_prior.predict_noise(x_t, t, emb), atol=1e-6)
    before = ((fake(x_t, t, emb, camera) - noise) ** 2).mean().item()
    opt = torch.optim.Adam(fake.parameters(), lr=1e-3)
    for _ in range(40):
        loss = ((fake(x_t, t, emb, camera) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * before


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_steps_the_optimization_loop(method, small_prior):
    from systems.text_to_3d import TextTo3DSystem
    from systems.trainer import fit, make_trainer
    cfg = build_config(CONFIG_DIR / f"{method}-nerf.yaml", values={
        "prompt": "a rubber duck", "camera": {"width": [32], "height": [32], "batch_size": 2},
        "renderer": {"num_samples_per_ray": 32}, "trainer": {"max_steps": 3}})
    assert cfg.guidance.method == method
    torch.manual_seed(0)
    system = TextTo3DSystem(cfg, small_prior)
    before = {k: v.clone() for k, v in system.representation.field.state_dict().items()}
    fit(make_trainer(3), system)
    stats = system.last_stats
    assert math.isfinite(stats["loss"]) and stats["nfe"] >= 2 and system.skipped_steps == 0
    changed = any(not torch.equal(v, system.representation.field.state_dict()[k]) for k, v in before.items())
    assert changed
    if method in ("vsd", "esd", "dsd"):
        assert any(k.startswith("guidance.fake.") for k in system.state_dict())
        assert math.isfinite(stats["loss_fake_score"])


def test_a_checkpoint_restores_the_fake_score(small_prior):
    """Resume must continue with the trained fake score, not a fresh one."""
    from systems.text_to_3d import TextTo3DSystem
    cfg = build_config(CONFIG_DIR / "esd-nerf.yaml", values={"prompt": "a rubber duck"})
    torch.manual_seed(0)
    trained = TextTo3DSystem(cfg, small_prior)
    with torch.no_grad():
        trained.guidance.fake.out.weight.normal_(std=0.01)  # as if it had trained
    state = trained.state_dict()
    assert any(k.startswith("guidance.fake.") for k in state)
    torch.manual_seed(1)
    fresh = TextTo3DSystem(cfg, small_prior)
    fresh.load_state_dict(state)
    x_t = torch.randn(2, 3, 64, 64)
    t, emb, camera = torch.tensor([300, 700]), small_prior.embed(["a rubber duck"] * 2), torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(fresh.guidance.fake(x_t, t, emb, camera), trained.guidance.fake(x_t, t, emb, camera))
