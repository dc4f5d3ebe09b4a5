"""Every guidance method against closed forms, on a Gaussian prior with an exact score.

Unit identities (exact up to float rounding) run on single calls with a replayed random stream;
the fixed-point cases (specs/guidance-sds-vsd-esd-csd-asd.md section 7) optimize a 1-D generator
x = m + S z whose "camera" is z, with the same guidance classes users run.
"""
from __future__ import annotations

import math

import pytest
import torch

from dreamer.config import GuidanceConfig
from dreamer.guidance import METHODS, Conditioning
from dreamer.guidance.base import perp, pixel_clip
from dreamer.guidance.bsd import min_norm_weight
from dreamer.guidance.interval import tsm_midpoint
from gaussian_prior import GaussianPrior, GeneratorFake, gaussian_eps

COND = "1,0.25"  # the target N(1, 0.25); the unconditional is N(0, 2.25)


def conditioning(prior, B, cond=COND, negative="", camera=None, res=1):
    emb = lambda p: prior.embed([p]).expand(B, -1).clone()  # noqa: E731
    camera = torch.randn(B, 1) if camera is None else camera
    return Conditioning(cond=emb(cond), null=emb(""), negative=emb(negative), plain=emb(cond), camera=camera)


def make(method, prior=None, max_steps=1000, **overrides):
    cfg = GuidanceConfig(method=method)
    for key, value in overrides.items():
        target = cfg
        *path, last = key.split("__")
        for p in path:
            target = getattr(target, p)
        setattr(target, last, value)
    return METHODS[method](cfg, prior or GaussianPrior(), max_steps)


def grad(gd, x, cond, seed=0):
    """g exactly as the method hands it to the injection loss (finalized)."""
    with torch.no_grad():
        g, t = gd.gradient(x, cond, torch.Generator().manual_seed(seed))
        return gd.finalize(g), t


# -- the shared base ---------------------------------------------------------------------------------


def test_perp_is_orthogonal_and_zero_weights_reduce_perp_neg_to_cfg():
    a, b = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    assert (perp(a, b) * b).flatten(1).sum(1).abs().max() < 1e-4
    prior = GaussianPrior(resolution=4)
    gd = make("sds", prior, guidance_scale=7.5)
    x_t, t = torch.randn(2, 1, 4, 4), torch.tensor([300, 600])
    plain = conditioning(prior, 2)
    with_neg = conditioning(prior, 2)
    with_neg.perp_neg_embeddings = torch.stack([prior.embed(["3,1", "-2,0.5"])] * 2)
    with_neg.perp_neg_weights = torch.zeros(2, 2)
    assert torch.allclose(gd.guided_eps(x_t, t, plain), gd.guided_eps(x_t, t, with_neg), atol=1e-6)
    with_neg.perp_neg_weights = torch.full((2, 2), -1.0)
    e_u, direction = gd.cfg_direction(x_t, t, with_neg)
    e_c = prior.predict_noise(x_t, t, with_neg.cond)
    expected = e_c - e_u
    for k in range(2):
        expected = expected - perp(prior.predict_noise(x_t, t, with_neg.perp_neg_embeddings[:, k]) - e_u, e_c - e_u)
    assert torch.allclose(direction, expected, atol=1e-6)


def test_pixel_clip_keeps_direction_per_pixel():
    g = torch.tensor([[[[0.1, -0.02, 0.05], [0.01, 0.02, -0.03], [0.0, 0.0, 0.0]]]])
    out = pixel_clip(g, 0.05)
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.05, -0.01, 0.025]))
    assert torch.equal(out[0, 0, 1], g[0, 0, 1]) and torch.equal(out[0, 0, 2], g[0, 0, 2])


def test_ddim_inversion_lands_exactly_on_target():
    prior = GaussianPrior(resolution=2)
    gd = make("ism", prior)
    cond = conditioning(prior, 3)
    x = torch.randn(3, 1, 2, 2)
    t_from, t_to = torch.tensor([0, 0, 100]), torch.tensor([450, 200, 100])
    seen = []

    def eps_fn(x_, t_, rows):
        seen.append(t_.tolist())
        return prior.predict_noise(x_, t_, cond.null[rows])
    out = gd.invert(x, t_from, t_to, eps_fn, 200)
    assert seen == [[0, 0], [200], [400]]  # 0 -> 200 -> 400 -> 450 and 0 -> 200; the third is already there
    manual = x[0:1]
    for i, k in ((0, 200), (200, 400), (400, 450)):
        ti, tk = torch.tensor([i]), torch.tensor([k])
        manual = gd.ddim(manual, ti, tk, prior.predict_noise(manual, ti, cond.null[:1]))
    assert torch.allclose(out[0:1], manual, atol=1e-6) and torch.equal(out[2], x[2])


def test_ism_step_matches_closed_form_T1():
    """e(D_{s->t} x_s, t) - e(x_s, s) = v (rho_t - rho_s)(z_s - mu) / ((v + rho_s^2)(v + rho_t^2))."""
    prior = GaussianPrior()
    gd = make("ism", prior)
    mu, v = 0.7, 0.09
    s, t = torch.tensor([400]), torch.tensor([480])
    x_s = torch.tensor([[[[0.9]]]], dtype=torch.float64)
    abar = prior.alphas_cumprod.double()
    e_s = gaussian_eps(x_s, s, mu, v, abar)
    x_t = gd.ddim(x_s, s, t, e_s)
    lhs = gaussian_eps(x_t, t, mu, v, abar) - e_s
    rho = lambda k: math.sqrt((1 - abar[k]) / abar[k])  # noqa: E731
    z_s = 0.9 / math.sqrt(abar[400])
    rhs = v * (rho(480) - rho(400)) * (z_s - mu) / ((v + rho(400) ** 2) * (v + rho(480) ** 2))
    assert lhs.item() == pytest.approx(rhs, rel=1e-6)


def test_ism_noise_to_is_the_point_its_gradient_is_taken_at():
    """noise_to (what docs/bench-quality/noising_pull.py screens) is ISM's own noising: from the same
    draws, the gradient is rho_t (guided eps at noise_to(x, t) - e(x_s, s))."""
    prior = GaussianPrior(resolution=4)
    gd = make("ism", prior)
    gd.update_step(1000)  # past the interval's warm-up
    x, cond = torch.randn(3, 1, 4, 4), conditioning(prior, 3)
    g, t = gd.gradient(x, cond, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    assert torch.equal(gd.sample_t(3, gen), t)
    draws = gen.get_state()
    x_t = gd.noise_to(x, t, cond, gen)
    gen.set_state(draws)
    s, x_s, e_s, _, _ = gd.interval_path(x, t, cond, gen)
    assert bool((s < t).all()) and not torch.allclose(x_t, x_s)
    assert torch.allclose(g, gd.weight(t) * (gd.guided_eps(x_t, t, cond) - e_s), atol=1e-6)


# -- identities between methods ---------------------------------------------------------------------


def test_esd_with_lambda_zero_is_vsd_exactly():
    prior = GaussianPrior(resolution=4)
    x, cond = torch.randn(4, 1, 4, 4), conditioning(prior, 4)
    vsd = make("vsd", prior, guidance_scale=7.5)
    esd = make("esd", prior, guidance_scale=7.5, entropy_weight=0.0)
    assert torch.equal(grad(vsd, x, cond)[0], grad(esd, x, cond)[0])
    # and guidance_scale_lora = 1 - lambda reproduces ESD at any lambda
    esd.cfg.entropy_weight = 0.3
    vsd.cfg.fake_score.guidance_scale_lora = 0.7
    vsd.update_step(0), esd.update_step(0)
    assert torch.allclose(grad(vsd, x, cond)[0], grad(esd, x, cond)[0], atol=1e-6)


def test_csd_classifier_and_sds_settings():
    prior = GaussianPrior(resolution=4)
    x, cond = torch.randn(3, 1, 4, 4), conditioning(prior, 3, negative="0.5,1")
    csd = make("csd", prior)  # defaults: cond 1, null -1
    g, t = grad(csd, x, cond)
    gen = torch.Generator().manual_seed(0)
    csd.sample_t(3, gen)
    noise = torch.randn(x.shape, generator=gen)
    x_t = csd.add_noise(x, t, noise)
    e_y, e_null = prior.predict_noise(x_t, t, cond.cond), prior.predict_noise(x_t, t, cond.null)
    assert torch.allclose(g, csd.weight(t) * (e_y - e_null), atol=1e-6)
    s = 7.5
    for key, value in (("cond_scale", s), ("negative_scale", 1 - s), ("null_scale", 0.0), ("noise_scale", -1.0)):
        setattr(csd.cfg.csd, key, value)
    sds = make("sds", prior, guidance_scale=s)
    assert torch.allclose(grad(csd, x, cond)[0], grad(sds, x, cond)[0], atol=1e-5)


def test_asd_without_shift_is_s_minus_one_times_csd():
    prior = GaussianPrior(resolution=4)
    x, cond = torch.randn(3, 1, 4, 4), conditioning(prior, 3)
    csd = make("csd", prior, weighting="sds")
    for s in (1.0, 7.5):
        asd = make("asd", prior, guidance_scale=s, asd__plus_ratio=0.0)
        g_asd, t_asd = grad(asd, x, cond)
        g_csd, t_csd = grad(csd, x, cond)
        assert torch.equal(t_asd, t_csd)
        assert torch.allclose(g_asd, (s - 1) * g_csd, atol=1e-5)
    assert grad(make("asd", prior, guidance_scale=1.0, asd__plus_ratio=0.0), x, cond)[0].abs().max() < 1e-6


def test_asd_shift_stays_in_range():
    gd = make("asd", asd__plus_ratio=0.5, asd__plus_random=False)
    t = torch.tensor([20, 500, 980, 999])
    t2 = gd.later_timestep(t)
    assert (t2 >= t).all() and (t2 <= 999).all()
    assert t2.tolist() == [20, 500 + int(0.5 * 480), 999, 999]


def test_nfsd_below_threshold_is_the_cfg_prediction():
    prior = GaussianPrior(resolution=4)
    x, cond = torch.randn(3, 1, 4, 4), conditioning(prior, 3, negative="0.5,1")
    gd = make("nfsd", prior, guidance_scale=7.5, min_step_percent=0.05, max_step_percent=0.15)
    g, t = grad(gd, x, cond)
    gen = torch.Generator().manual_seed(0)
    gd.sample_t(3, gen)
    x_t = gd.add_noise(x, t, torch.randn(x.shape, generator=gen))
    e_y, e_null = prior.predict_noise(x_t, t, cond.cond), prior.predict_noise(x_t, t, cond.null)
    assert torch.allclose(g, gd.weight(t) * (e_null + 7.5 * (e_y - e_null)), atol=1e-5)
    gd = make("nfsd", prior, guidance_scale=7.5, min_step_percent=0.5, max_step_percent=0.9)
    g, t = grad(gd, x, cond)
    gen = torch.Generator().manual_seed(0)
    gd.sample_t(3, gen)
    x_t = gd.add_noise(x, t, torch.randn(x.shape, generator=gen))
    e_y, e_null, e_neg = (prior.predict_noise(x_t, t, e) for e in (cond.cond, cond.null, cond.negative))
    assert torch.allclose(g, gd.weight(t) * (e_null - e_neg + 7.5 * (e_y - e_null)), atol=1e-5)


def test_ism_zero_interval_is_the_classifier_term_and_vanishes_without_a_prompt():
    prior = GaussianPrior(resolution=4)
    x = torch.randn(3, 1, 4, 4)
    cond = conditioning(prior, 3, negative="0.5,1")
    gd = make("ism", prior, guidance_scale=7.5, weighting="rho", interval__delta_t=0)
    g, t = grad(gd, x, cond)
    # replay the inversion to get x_t (= x_s when the interval is zero)
    gen = torch.Generator().manual_seed(0)
    gd.sample_t(3, gen)
    zero = torch.zeros_like(t)
    x0 = gd.add_noise(x, zero, gd.noise_like(x, gen, 0.1))
    x_t = gd.invert(x0, zero, t, gd.null_eps(cond), 200)
    e_y, e_n, e_0 = (prior.predict_noise(x_t, t, e) for e in (cond.cond, cond.negative, cond.null))
    assert torch.allclose(g, gd.weight(t) * ((e_n - e_0) + 7.5 * (e_y - e_n)), atol=1e-5)
    blank = conditioning(prior, 3, cond="")
    assert grad(gd, x, blank)[0].abs().max() < 1e-6


def test_ism_pulls_toward_the_mean_with_an_unconditional_prior():
    """Spec: with the start noise set to zero, sign(g) = sign(x0 - mu), g(mu) = 0, and for mu = 0.7,
    s = 0.3, t = 480: g(1.9) = +0.0353, g(-0.5) = -0.0353."""
    prior = GaussianPrior(uncond=(0.7, 0.09))
    gd = make("ism", prior, weighting="rho", min_step_percent=0.48, max_step_percent=0.48, interval__offset_noise=0.0)
    gd.noise_like = lambda x, generator, offset=0.0: torch.zeros_like(x)
    blank = conditioning(prior, 3, cond="")
    x = torch.tensor([1.9, 0.7, -0.5]).reshape(3, 1, 1, 1)
    g = grad(gd, x, blank)[0].flatten()
    assert g[0].item() == pytest.approx(0.0353, abs=5e-5) and g[2].item() == pytest.approx(-0.0353, abs=5e-5)
    assert abs(g[1]) < 1e-6


def test_tsm_midpoint_and_its_two_limits():
    assert tsm_midpoint(torch.tensor([400]), torch.tensor([480]), 0.3).item() == 476
    prior = GaussianPrior(resolution=4)
    x, cond = torch.randn(3, 1, 4, 4), conditioning(prior, 3, negative="0.5,1")
    ism = make("ism", prior, guidance_scale=7.5)
    tsm = make("tsm", prior, guidance_scale=7.5, interval__gamma=1.0)
    assert torch.equal(grad(ism, x, cond)[0], grad(tsm, x, cond)[0])
    # gamma = 0: mu = t, the classifier-only term at TSM's own x_t
    tsm.cfg.interval.gamma = 0.0
    g, t = grad(tsm, x, cond)
    gen = torch.Generator().manual_seed(0)
    tsm.sample_t(3, gen)
    s, zero = (t - 80).clamp(min=0), torch.zeros_like(t)
    x0 = tsm.add_noise(x, zero, tsm.noise_like(x, gen, 0.1))
    x_s = tsm.invert(x0, zero, s, tsm.null_eps(cond), 200)
    x_t = tsm.invert(x_s, s, t, tsm.null_eps(cond), 200)
    e_y, e_n, e_0 = (prior.predict_noise(x_t, t, e) for e in (cond.cond, cond.negative, cond.null))
    assert torch.allclose(g, tsm.weight(t) * ((e_n - e_0) + 7.5 * (e_y - e_n)), atol=1e-5)


def test_tsm_lands_on_mu_beyond_the_inversion_stride():
    """delta_t 250 > stride 200: the path to mu takes two steps and ends exactly at mu."""
    prior = GaussianPrior(resolution=2)
    gd = make("tsm", prior, interval__delta_t=250, interval__gamma=0.3, min_step_percent=0.9, max_step_percent=0.9)
    calls = []
    real = gd.eps

    def spy(x_t, t, emb):
        calls.append(t.tolist())
        return real(x_t, t, emb)
    gd.eps = spy
    grad(gd, torch.randn(1, 1, 2, 2), conditioning(prior, 1))
    mu = tsm_midpoint(torch.tensor([650]), torch.tensor([900]), 0.3).item()
    assert [850] in calls and [mu] in calls  # 650 -> 850 -> mu, then e(x_mu, mu)


def test_cds_is_zero_for_a_point_mass_and_matches_closed_form_T2():
    point = GaussianPrior(resolution=4)
    x = torch.randn(3, 1, 4, 4)
    gd = make("cds", point, guidance_scale=1.0, weighting="uniform")
    g, _ = grad(gd, x, conditioning(point, 3, cond="0.3,0"))
    assert g.abs().max() < 1e-4
    mu, v = 0.3, 0.25
    g, t = grad(gd, x, conditioning(point, 3, cond=f"{mu},{v}"))
    abar = point.alphas_cumprod.double()
    t_n = gd.timesteps(3)[1]
    rho = lambda k: ((1 - abar[k]) / abar[k]).sqrt().reshape(-1, 1, 1, 1)  # noqa: E731
    z_t = x.double() + rho(t) * gd.fixed_noise.double()
    expected = v * (rho(t) - rho(t_n)) * (z_t - mu) / ((v + rho(t) ** 2) * (v + rho(t_n) ** 2))
    assert torch.allclose(g.double(), expected, atol=1e-4)


def test_bsd_min_norm_weight():
    e = lambda *v: torch.tensor(v).reshape(1, -1, 1, 1)  # noqa: E731
    assert min_norm_weight(e(1.0, 0.0), e(0.0, 1.0)).item() == pytest.approx(0.5)
    a = min_norm_weight(e(2.0, 0.0), e(0.0, 1.0)).item()
    d = a * e(2.0, 0.0) + (1 - a) * e(0.0, 1.0)
    assert a == pytest.approx(0.2) and torch.allclose(d.flatten(), torch.tensor([0.4, 0.8]))
    assert min_norm_weight(e(2.0, 0.0), e(1.0, 0.0)).item() == 0.0  # <g_c, g_d> >= |g_d|^2
    assert min_norm_weight(e(1.0, 0.0), e(2.0, 0.0)).item() == 1.0  # <g_c, g_d> >= |g_c|^2
    g_c, g_d = torch.randn(16, 3, 2, 2), torch.randn(16, 3, 2, 2)
    alpha = min_norm_weight(g_c, g_d)
    grid = torch.linspace(0, 1, 2001).reshape(1, -1)
    norms = ((grid[..., None] * g_c.flatten(1)[:, None] + (1 - grid[..., None]) * g_d.flatten(1)[:, None]) ** 2).sum(-1)
    best = (alpha.flatten()[:, None] * g_c.flatten(1) + (1 - alpha.flatten()[:, None]) * g_d.flatten(1)).pow(2).sum(-1)
    assert ((alpha >= 0) & (alpha <= 1)).all() and (best <= norms.min(1).values + 1e-4).all()


def test_bsd_gives_nothing_when_the_prompt_has_no_effect():
    prior = GaussianPrior(resolution=4)
    gd = make("bsd", prior)
    g, _ = grad(gd, torch.randn(3, 1, 4, 4), conditioning(prior, 3, cond=""))
    assert g.abs().max() < 1e-6


def test_dsd_limits():
    prior = GaussianPrior(resolution=4)
    x, cond = torch.randn(3, 1, 4, 4), conditioning(prior, 3)
    # fake == the null prediction: g = w (lam_c + lam_v s) (e_y - e_null), pure CSD
    null_fake = lambda: NullFake(prior)  # noqa: E731
    p2 = GaussianPrior(resolution=4, fake_factory=null_fake)
    dsd = make("dsd", p2, guidance_scale=7.5, dsd__classifier_weight=0.3, dsd__variational_weight=0.6)
    csd = make("csd", p2, weighting="sds")
    assert torch.allclose(grad(dsd, x, cond)[0], (0.3 + 0.6 * 7.5) * grad(csd, x, cond)[0], atol=1e-5)
    vsd = make("vsd", prior, guidance_scale=7.5)
    dsd = make("dsd", prior, guidance_scale=7.5, dsd__classifier_weight=0.0, dsd__variational_weight=1.0)
    assert torch.allclose(grad(dsd, x, cond)[0], grad(vsd, x, cond)[0], atol=1e-6)
    dsd = make("dsd", prior, dsd__classifier_weight=1.0, dsd__variational_weight=0.0)
    assert torch.allclose(grad(dsd, x, cond)[0], grad(csd, x, cond)[0], atol=1e-6)


class NullFake(torch.nn.Module):
    def __init__(self, prior):
        super().__init__()
        self.prior, self.evaluations = [prior], 0

    def forward(self, x_t, t, emb, camera):
        return self.prior[0].predict_noise(x_t, t, self.prior[0].embed([""]).expand(x_t.shape[0], -1))


def test_evaluations_are_counted_per_sample():
    prior = GaussianPrior(resolution=4)
    x, cond = torch.randn(2, 1, 4, 4, requires_grad=True), conditioning(prior, 2)
    expected = {"sds": 2, "csd": 3, "asd": 3, "nfsd": 3, "bsd": 2, "cds": 4, "vsd": 2 + 1, "esd": 2 + 2, "dsd": 2 + 1}
    for method, nfe in expected.items():
        out = make(method, prior)(x, cond, torch.Generator().manual_seed(0))
        assert out["nfe"] == nfe, method
        assert torch.isfinite(out["loss_guidance"])
    # ISM at t = 500, interval 80: s = 420 -> inversion 0, 200, 400 (3) + e(x_s) + CFG (2)
    ism = make("ism", prior, min_step_percent=0.5, max_step_percent=0.5)
    assert ism(x, cond)["nfe"] == 6
    tsm = make("tsm", prior, min_step_percent=0.5, max_step_percent=0.5)
    assert tsm(x, cond)["nfe"] == 7


# -- fixed points of a 1-D generator (spec section 7) ------------------------------------------------


def fit_generator(method, steps=2500, batch=256, conditional_fake=None, seed=0, **overrides):
    """Optimize x = m + S z with Adam; returns (m, |S|)."""
    m = torch.tensor(3.0, requires_grad=True)
    S = torch.tensor(1.0, requires_grad=True)
    prior = GaussianPrior()
    if conditional_fake is not None:
        prior.fake_factory = lambda: GeneratorFake((m, S), prior.alphas_cumprod, conditional_fake)
    gd = make(method, prior, max_steps=steps, **overrides)
    opt = torch.optim.Adam([m, S], lr=0.02, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed)
    emb = prior.embed([COND, ""])
    for step in range(steps):
        gd.update_step(step)
        z = torch.randn(batch, generator=gen)
        x = (m + S * z).reshape(-1, 1, 1, 1)
        e = lambda i: emb[i].expand(batch, -1)  # noqa: E731
        cond = Conditioning(cond=e(0), null=e(1), negative=e(1), plain=e(0), camera=z[:, None])
        loss = gd(x, cond, gen)["loss_guidance"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.item(), abs(S.item())


@pytest.fixture(scope="module")
def sds_fit():
    return fit_generator("sds", guidance_scale=1.0)


def test_sds_collapses_to_the_mode(sds_fit):
    m, S = sds_fit
    assert m == pytest.approx(1.0, abs=0.05) and S < 0.05


def test_vsd_with_the_exact_fake_score_matches_mean_and_spread():
    m, S = fit_generator("vsd", guidance_scale=1.0, conditional_fake=False)
    assert m == pytest.approx(1.0, abs=0.05) and S == pytest.approx(0.5, abs=0.05)


def test_esd_spread_grows_with_lambda():
    spreads = []
    for lam in (0.0, 0.75, 0.9, 1.0):
        m, S = fit_generator("esd", guidance_scale=1.0, conditional_fake=True, entropy_weight=lam,
                             max_step_percent=0.5)
        assert m == pytest.approx(1.0, abs=0.05)
        spreads.append(S)
    assert spreads == sorted(spreads), spreads
    assert spreads[0] < 0.05 and spreads[-1] == pytest.approx(0.5, abs=0.05)
    # closed form per t (spec): S^2 = lambda v - (1 - lambda) rho_t^2, averaged over t <= 500
    assert 0.1 < spreads[1] < 0.35 and 0.3 < spreads[2] < 0.47


def test_asd_is_mode_seeking_and_follows_cfg():
    m, S = fit_generator("asd", guidance_scale=1.0)
    assert m == pytest.approx(1.0, abs=0.05) and S < 0.05
    assert fit_generator("asd", guidance_scale=7.5)[0] == pytest.approx(2.26, abs=0.1)


def test_cfg_fixed_point_moves_past_the_conditional_mean_bounded_by_csd(sds_fit):
    means = [sds_fit[0]] + [fit_generator("sds", guidance_scale=s)[0] for s in (7.5, 100.0)]
    m_csd = fit_generator("csd", weighting="sds")[0]
    assert means == sorted(means) and means[0] == pytest.approx(1.0, abs=0.05)
    assert means[1] == pytest.approx(1.96, abs=0.1) and means[2] == pytest.approx(2.28, abs=0.1)
    assert means[2] <= m_csd + 0.05 and m_csd == pytest.approx(2.34, abs=0.1)


# -- each method's settings: what it reads is what it declares, and all its recipes may set ---------

SECTIONS = {"csd", "asd", "nfsd", "interval", "bsd", "dsd", "cds", "fake_score", "entropy_weight"}


class Recorder:
    """The guidance config, noting which of its top-level keys are read."""

    def __init__(self, cfg):
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "read", set())

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self._cfg, name)


@pytest.mark.parametrize("method", list(METHODS))
def test_a_method_reads_exactly_the_settings_it_declares(method):
    prior = GaussianPrior(resolution=4)
    cfg = Recorder(GuidanceConfig(method=method))
    gd = METHODS[method](cfg, prior, 100)
    for step in (0, 50):
        gd.update_step(step)
        x = torch.randn(2, 1, 4, 4, requires_grad=True)
        gd(x, conditioning(prior, 2), generator=torch.Generator().manual_seed(step))
    assert cfg.read & SECTIONS == set(METHODS[method].settings)


def test_a_recipe_sets_only_settings_its_method_reads():
    from dreamer.config import CONFIG_DIR, load_recipe
    recipes = sorted(CONFIG_DIR.glob("*.yaml"))
    assert len(recipes) > 20
    for path in recipes:
        guidance = load_recipe(path).get("guidance", {})
        method = guidance.get("method", "sds")
        extra = (set(guidance) & SECTIONS) - set(METHODS[method].settings)
        assert not extra, f"{path.name} sets guidance.{sorted(extra)}, which {method} does not read"
