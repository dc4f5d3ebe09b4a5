import math

import pytest
import torch

from dreamer.cameras import VIEW_LABELS
from dreamer.errors import UserError


def brute_force_eps(prior, x_t, t, log_w):
    """Float64 evaluation straight from the definition, one reference at a time."""
    abar = prior.alphas_cumprod.double()[t]
    a, s = abar.sqrt(), (1 - abar).sqrt()
    refs = prior.refs.images.double()
    x = x_t.double()
    logits = torch.stack([log_w[i].double() - ((x - a * refs[i]) ** 2).sum() / (2 * s * s)
                          for i in range(len(refs))])
    r = torch.softmax(logits, 0)
    D = (r[:, None, None, None] * refs).sum(0)
    return (x - a * D) / s


@pytest.mark.parametrize("t", [20, 300, 700, 980])
def test_closed_form_matches_brute_force(small_prior, t):
    g = torch.Generator().manual_seed(t)
    emb = small_prior.embed(["a rubber duck, side view", ""])
    x0 = small_prior.refs.images[5]
    x_t = 0.9 * x0 + 0.3 * torch.randn(x0.shape, generator=g)
    x_t = torch.stack([x_t, x_t])
    eps = small_prior.predict_noise(x_t, torch.tensor([t, t]), emb)
    for i in range(2):
        ref = brute_force_eps(small_prior, x_t[i], t, emb[i])
        assert torch.allclose(eps[i].double(), ref, atol=1e-4, rtol=1e-4)


def test_posterior_flattens_to_label_prior_near_T(small_prior):
    """As t -> T the posterior over references moves toward the label-reweighted prior weights:
    total variation to them shrinks and the effective number of references grows. (In 12,288
    dimensions it does not reach the prior at T = 1000: sqrt(abar_T) |x| is still ~6.)"""
    emb = small_prior.embed(["a rubber duck, front view"])
    prior_w = emb[0].double().exp()
    g = torch.Generator().manual_seed(0)
    x0 = small_prior.refs.images[10:11]
    noise = torch.randn(x0.shape, generator=g)
    tv, ess = [], []
    for t in (800, 900, 950, 990, 999):
        abar = small_prior.alphas_cumprod[t]
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        r = small_prior.posterior(x_t, torch.tensor([t]), emb)[0]
        tv.append(0.5 * (r - prior_w).abs().sum().item())
        ess.append(1 / (r ** 2).sum().item())
    assert all(b < a for a, b in zip(tv, tv[1:]))
    assert ess[-1] > 4 * ess[0]
    # Zero signal is the limit case: the posterior equals the prior weights exactly.
    r0 = small_prior.posterior(torch.zeros(1, 3, 64, 64), torch.tensor([999]), emb)[0]
    logits = emb[0].double() - small_prior.alphas_cumprod.double()[999] * small_prior._sq_norms / (2 * (1 - small_prior.alphas_cumprod.double()[999]))
    assert torch.allclose(r0, torch.softmax(logits, 0), atol=1e-9)


def test_small_t_denoises_reference_to_itself(small_prior):
    g = torch.Generator().manual_seed(1)
    idx = torch.tensor([3, 60, 130])
    x0 = small_prior.refs.images[idx]
    t = torch.full((3,), 20)
    abar = small_prior.alphas_cumprod[20]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * torch.randn(x0.shape, generator=g)
    D = small_prior.denoise(x_t, t, small_prior.embed([""] * 3))
    assert (D - x0).abs().max() < 1e-3


def test_view_reweighting_and_unconditional(small_prior):
    refs = small_prior.refs
    w = small_prior.embed(["a rubber duck, front view"])[0].double().exp()
    duck = refs.object_ids == 0
    front = duck & (refs.labels == VIEW_LABELS.index("front"))
    assert w.sum() == pytest.approx(1.0, abs=1e-5)
    assert w[front].sum() == pytest.approx(small_prior.view_fidelity, abs=1e-5)
    assert w[~duck].sum() == 0
    u = small_prior.embed([""])[0].double().exp()
    for o in range(3):
        assert u[refs.object_ids == o].sum() == pytest.approx(1 / 3, abs=1e-5)


def test_ddim_sampling_lands_on_catalogue_references(small_prior):
    """Deterministic DDIM from pure noise with the exact score ends on (near) a duck reference."""
    g = torch.Generator().manual_seed(0)
    emb = small_prior.embed(["a rubber duck"] * 2)
    abar = small_prior.alphas_cumprod
    x = torch.randn(2, 3, 64, 64, generator=g)
    steps = torch.linspace(999, 0, 50).long()
    for i, t in enumerate(steps):
        tt = torch.full((2,), int(t))
        eps = small_prior.predict_noise(x, tt, emb)
        x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
        a_prev = abar[steps[i + 1]] if i + 1 < len(steps) else torch.tensor(1.0)
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    refs = small_prior.refs.images
    dist = ((x[:, None] - refs[None]) ** 2).mean((2, 3, 4)).sqrt()  # RMSE to every reference
    best = dist.argmin(1)
    assert (small_prior.refs.object_ids[best] == 0).all()
    assert dist.min(1).values.max() < 0.05


def test_unknown_prompt_lists_catalogue(small_prior):
    with pytest.raises(UserError, match=r'does not know "a dragon".*"rubber duck".*--prior'):
        small_prior.check_prompt("a dragon")


def test_prompt_matching():
    from dreamer.toy.catalogue import Catalogue
    cat = Catalogue()
    assert cat.resolve("A Rubber Duck, back view") == (0, "back")
    assert cat.resolve("a photo of a toy car") == (cat.index_of("toy car"), None)
    assert cat.resolve("") == (None, None)


def test_schedule_is_stable_diffusion():
    from dreamer.priors.base import sd_alphas_cumprod
    abar = sd_alphas_cumprod()
    betas = torch.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000, dtype=torch.float64) ** 2
    assert abar[0] == pytest.approx(1 - 0.00085)
    assert abar[-1] == pytest.approx(torch.prod(1 - betas).item())
    assert abar[-1] < 0.005


# -- the realistic world ---------------------------------------------------------------------------

def realistic(small_catalogue, resolution=8, temperature=64.0):
    from dreamer.toy.prior import ToyPrior
    return ToyPrior(small_catalogue, refs_per_object=48, world="realistic", posterior_resolution=resolution,
                    posterior_temperature=temperature)


def brute_force_coarse_eps(prior, x_t, t, log_w, k, temperature):
    """The realistic world from its definition: the posterior of the mixture given only the k x k
    block means of x_t (times k, unit noise), with the noise variance scaled by the temperature,
    one reference and one block at a time; then the full-resolution denoiser."""
    abar = prior.alphas_cumprod.double()[t]
    a, var = abar.sqrt(), (1 - abar) * temperature
    refs = prior.refs.images.double()
    x = x_t.double()
    R = x.shape[-1] // k

    def blocks(img):
        return torch.stack([img[:, i * k:(i + 1) * k, j * k:(j + 1) * k].mean((-1, -2)) * k
                            for i in range(R) for j in range(R)], -1)
    xb = blocks(x)
    logits = torch.stack([log_w[i].double() + torch.distributions.Normal(a * blocks(refs[i]), var.sqrt())
                          .log_prob(xb).sum() for i in range(len(refs))])
    r = torch.softmax(logits, 0)
    D = (r[:, None, None, None] * refs).sum(0)
    return (x - a * D) / (1 - abar).sqrt()


@pytest.mark.parametrize("t", [200, 600])
def test_the_realistic_world_is_its_definition(small_catalogue, t):
    prior = realistic(small_catalogue, resolution=8, temperature=16.0)
    g = torch.Generator().manual_seed(t)
    emb = prior.embed(["a rubber duck, back view"])
    x_t = 0.8 * prior.refs.images[7:8] + 0.4 * torch.randn((1, 3, 64, 64), generator=g)
    eps = prior.predict_noise(x_t, torch.tensor([t]), emb)
    ref = brute_force_coarse_eps(prior, x_t[0], t, emb[0], k=8, temperature=16.0)
    assert torch.allclose(eps[0].double(), ref, atol=1e-4, rtol=1e-4)


def test_the_realistic_world_at_full_resolution_and_temperature_one_is_exact(small_prior, small_catalogue):
    prior = realistic(small_catalogue, resolution=64, temperature=1.0)
    g = torch.Generator().manual_seed(3)
    x_t = torch.randn((2, 3, 64, 64), generator=g)
    t, emb = torch.tensor([300, 800]), small_prior.embed(["a snowman", "a rubber duck, side view"])
    assert torch.equal(prior.predict_noise(x_t, t, emb), small_prior.predict_noise(x_t, t, emb))


def test_coarse_weighing_keeps_unit_noise_and_spreads_the_posterior(small_prior, small_catalogue):
    prior = realistic(small_catalogue)
    noise = prior.coarse(torch.randn((64, 3, 64, 64), generator=torch.Generator().manual_seed(0)).double())
    assert noise.shape == (64, 3 * 8 * 8) and abs(float(noise.var()) - 1) < 0.05
    x_t = 0.53 * prior.refs.images[:4] + 0.85 * torch.randn((4, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    emb = prior.embed(["a rubber duck"] * 4)
    perplexity = lambda r: float(torch.exp(-(r * r.clamp_min(1e-300).log()).sum(-1)).mean())  # noqa: E731
    t = torch.full((4,), 500)
    assert perplexity(small_prior.posterior(x_t, t, emb)) < 2 < 10 < perplexity(prior.posterior(x_t, t, emb))


def test_the_realistic_world_leans_to_the_front_within_each_group(small_catalogue, small_prior):
    from dreamer.toy.prior import ToyPrior
    prior = ToyPrior(small_catalogue, refs_per_object=48, world="realistic", view_fidelity=0.3, front_lean=1.5)
    w = prior.log_weights("a rubber duck, back view").double().exp()
    duck, back = prior.refs.object_ids == 0, prior.refs.labels == VIEW_LABELS.index("back")
    assert float(w[duck & back].sum()) == pytest.approx(0.3) and float(w.sum()) == pytest.approx(1.0)
    rest = torch.nonzero(duck & ~back).flatten()
    cos = torch.cos(torch.deg2rad(prior.refs.azimuth.double()))
    i, j = rest[0], rest[1:]
    assert torch.allclose(w[j] / w[i], torch.exp(1.5 * (cos[j] - cos[i])))
    exact = ToyPrior(small_catalogue, refs_per_object=48, front_lean=1.5)  # the exact world ignores it
    assert torch.equal(exact.log_weights("a rubber duck, back view"), small_prior.log_weights("a rubber duck, back view"))


def test_view_odds_multiply_the_labels_odds_against_the_front_lean(small_catalogue, small_prior):
    """view_odds b: a view suffix multiplies the odds of the object's references with its label by
    e^b, on top of the lean, so the label's share is no longer fixed: a strong lean outweighs it."""
    from dreamer.toy.prior import ToyPrior
    make = lambda lean: ToyPrior(small_catalogue, refs_per_object=48, world="realistic", front_lean=lean, view_odds=1.0)  # noqa: E731
    prior = make(1.5)
    w = prior.log_weights("a rubber duck, back view").double().exp()
    duck, back = prior.refs.object_ids == 0, prior.refs.labels == VIEW_LABELS.index("back")
    cos = torch.cos(torch.deg2rad(prior.refs.azimuth.double()))
    lean = torch.exp(1.5 * cos)
    expected = torch.where(duck, lean * torch.where(back, math.e, 1.0), torch.zeros_like(lean))
    assert torch.allclose(w, expected / expected.sum()) and float(w[~duck].sum()) == 0
    # no suffix: the lean alone, as without view odds
    plain = ToyPrior(small_catalogue, refs_per_object=48, world="realistic", front_lean=1.5)
    assert torch.allclose(prior.log_weights("a rubber duck"), plain.log_weights("a rubber duck"))
    # the back label's share falls as the lean grows (with fixed mass it would stay view_fidelity)
    share = lambda p: float(p.log_weights("a rubber duck, back view").double().exp()[duck & back].sum())  # noqa: E731
    assert share(make(0.0)) > share(make(1.5)) > share(make(3.0))
    exact = ToyPrior(small_catalogue, refs_per_object=48, view_odds=1.0)  # the exact world ignores it
    assert torch.equal(exact.log_weights("a rubber duck, back view"), small_prior.log_weights("a rubber duck, back view"))


def test_without_lean_on_the_empty_prompt_only_object_prompts_lean(small_catalogue):
    """lean_empty_prompt=false: the empty prompt weighs every reference alike (1 / N); a prompt naming
    an object keeps its lean, so the two branches of classifier-free guidance differ by it."""
    from dreamer.toy.prior import ToyPrior
    make = lambda flag: ToyPrior(small_catalogue, refs_per_object=48, world="realistic", front_lean=3.0,  # noqa: E731
                                 view_odds=1.0, lean_empty_prompt=flag)
    captions, both = make(False), make(True)
    n = len(captions.refs.images)
    assert torch.allclose(captions.log_weights("").double().exp(), torch.full((n,), 1.0 / n, dtype=torch.float64))
    assert not torch.allclose(both.log_weights("").double().exp(), torch.full((n,), 1.0 / n, dtype=torch.float64))
    for prompt in ("a rubber duck", "a snowman, back view"):
        assert torch.equal(captions.log_weights(prompt), both.log_weights(prompt))


def test_a_view_blind_share_of_the_estimate_is_the_prompts_mean_reference(small_catalogue):
    """view_blind b: the denoised image is (1 - b) of the realistic world's plus b of the prompt's
    mean reference (weights softmax(log w)), whatever x_t shows; b = 0 is the realistic world."""
    from dreamer.toy.prior import ToyPrior
    make = lambda b: ToyPrior(small_catalogue, refs_per_object=48, world="realistic", front_lean=1.5, view_blind=b)  # noqa: E731
    base, half, blind = make(0.0), make(0.5), make(1.0)
    g = torch.Generator().manual_seed(5)
    x_t = torch.randn((2, 3, 64, 64), generator=g)
    t, emb = torch.tensor([250, 700]), base.embed(["a snowman, back view", "a rubber duck"])
    mean = (torch.softmax(emb.double(), -1) @ base.refs.images.double().reshape(len(base.refs.images), -1)).reshape(2, 3, 64, 64)
    assert torch.allclose(blind.denoise(x_t, t, emb).double(), mean, atol=1e-5)
    assert torch.allclose(blind.denoise(torch.zeros_like(x_t), t, emb), blind.denoise(x_t, t, emb))  # x_t ignored
    assert torch.allclose(half.denoise(x_t, t, emb).double(), 0.5 * base.denoise(x_t, t, emb).double() + 0.5 * mean, atol=1e-5)
    exact = ToyPrior(small_catalogue, refs_per_object=48, view_blind=1.0)  # the exact world ignores it
    assert exact.view_blind == 0.0


def test_silhouette_weighing_sees_outlines_not_colours(small_catalogue):
    """weigh_on=silhouette: each reference is weighed as its coverage filled with its object's mean
    colour on white, so two views with one outline weigh in the ratio of their prompt weights,
    whatever x_t shows; the estimate still blends the full references."""
    from dreamer.toy.prior import ToyPrior, silhouettes
    prior = ToyPrior(small_catalogue, refs_per_object=48, world="realistic", front_lean=1.5, weigh_on="silhouette")
    refs = prior.refs
    fills = silhouettes(refs)
    duck = refs.object_ids == 0
    cover = refs.coverage.double()[duck][:, None]
    colour = (refs.images.double()[duck] * cover).sum((0, 2, 3)) / cover.sum()  # brute force, by hand
    i = int(torch.nonzero(duck)[0])
    full, empty = refs.coverage[i] > 0.999, refs.coverage[i] < 1e-6
    assert torch.allclose(fills[i][:, full], colour[:, None].expand(3, int(full.sum())))
    assert torch.all(fills[i][:, empty] == 1.0)  # white background
    # two references given one outline get one weighing feature, so their posterior ratio is their
    # prior ratio at every x_t and t
    j = int(torch.nonzero(duck)[5])
    prior._weighed_refs[j] = prior._weighed_refs[i]
    prior._sq_norms[j] = prior._sq_norms[i]
    g = torch.Generator().manual_seed(2)
    x_t, t = torch.randn((3, 3, 64, 64), generator=g), torch.tensor([100, 500, 900])
    emb = prior.embed(["a rubber duck, back view"] * 3)
    r = prior.posterior(x_t, t, emb)
    assert torch.allclose(r[:, j] / r[:, i], (emb[:, j].double() - emb[:, i].double()).exp(), rtol=1e-6)
    assert prior.denoise(x_t, t, emb).shape == x_t.shape
    exact = ToyPrior(small_catalogue, refs_per_object=48, weigh_on="silhouette")  # the exact world ignores it
    assert exact.weigh_on == "image"


def local_prior(small_catalogue, window=3, below=1000, temperature=4.0):
    from dreamer.toy.prior import ToyPrior
    return ToyPrior(small_catalogue, refs_per_object=48, world="realistic", local_window=window,
                    local_below=below, local_temperature=temperature)


def test_local_weighing_matches_its_definition_pixel_by_pixel(small_catalogue):
    """Each pixel's posterior from its own window, one reference and one pixel at a time in float64:
    the window's mean squared distance (at a border, over the part inside the image) times k^2."""
    prior, k, t, temperature = local_prior(small_catalogue), 3, 300, 4.0
    g = torch.Generator().manual_seed(3)
    x_t = 0.8 * prior.refs.images[7] + 0.4 * torch.randn((3, 64, 64), generator=g)
    emb = prior.embed(["a rubber duck, back view"])
    got = prior.denoise(x_t[None], torch.tensor([t]), emb)[0]
    abar = prior.alphas_cumprod.double()[t]
    a, s2 = abar.sqrt(), (1 - abar) * temperature
    refs, x = prior.refs.images.double(), x_t.double()
    for y, z in ((0, 0), (0, 31), (20, 40), (63, 63)):
        rows, cols = slice(max(y - 1, 0), y + 2), slice(max(z - 1, 0), z + 2)
        logits = []
        for i in range(len(refs)):
            sq = ((x[:, rows, cols] - a * refs[i][:, rows, cols]) ** 2).sum(0)
            logits.append(emb[0, i].double() - sq.mean() * k * k / (2 * s2))
        r = torch.softmax(torch.stack(logits), 0)
        want = (r[:, None] * refs[:, :, y, z]).sum(0)
        assert torch.allclose(got[:, y, z].double(), want, atol=1e-4), (y, z)


def test_local_weighing_composes_references_the_global_weighing_cannot(small_catalogue):
    """Left half of one duck view, right half of another, lightly noised: each pixel's window finds
    its own reference, so the estimate is the composite; one weighing for the whole image is not."""
    prior = local_prior(small_catalogue, temperature=1.0)
    plain = realistic(small_catalogue)
    duck = torch.nonzero(prior.refs.object_ids == 0).flatten()
    composite = prior.refs.images[duck[0]].clone()
    composite[:, :, 32:] = prior.refs.images[duck[24]][:, :, 32:]
    t = 100
    abar = prior.alphas_cumprod[t]
    x_t = abar.sqrt() * composite + (1 - abar).sqrt() * torch.randn((3, 64, 64), generator=torch.Generator().manual_seed(4))
    emb = prior.embed(["a rubber duck"])
    away = torch.ones(64, dtype=torch.bool)
    away[29:35] = False  # the seam, where windows straddle both halves
    err = lambda d: float(((d[0] - composite)[:, :, away] ** 2).mean().sqrt())  # noqa: E731
    local, whole = err(prior.denoise(x_t[None], torch.tensor([t]), emb)), err(plain.denoise(x_t[None], torch.tensor([t]), emb))
    assert local < 0.05 < 0.2 < whole


def test_local_weighing_acts_only_below_its_timestep_and_in_the_realistic_world(small_catalogue):
    from dreamer.toy.prior import ToyPrior
    prior, plain = local_prior(small_catalogue, below=500), realistic(small_catalogue)
    x_t = torch.randn((2, 3, 64, 64), generator=torch.Generator().manual_seed(5))
    emb = prior.embed(["a snowman", ""])
    high, low = torch.tensor([500, 800]), torch.tensor([499, 100])
    assert torch.equal(prior.predict_noise(x_t, high, emb), plain.predict_noise(x_t, high, emb))
    assert not torch.allclose(prior.predict_noise(x_t, low, emb), plain.predict_noise(x_t, low, emb), atol=1e-3)
    assert ToyPrior(small_catalogue, refs_per_object=48, local_window=3, local_below=1000).local_window == 0
