"""The `trained` toy world: the denoiser's file round trip, its conditioning, the prior around it, and
the training's caption statistics against their definitions."""
import math

import pytest
import torch

from dreamer.config import PriorConfig
from dreamer.errors import UserError
from dreamer.toy.denoiser import ToyDenoiser, load_denoiser, save_denoiser
from dreamer.toy.denoiser_training import Captions, caption_batch, new_state, train_steps
from dreamer.toy.references import ReferenceSet

SMALL = (16, 16, 16)


def _net(objects, seed=0):
    torch.manual_seed(seed)
    net = ToyDenoiser(objects, SMALL)
    torch.nn.init.normal_(net.out.weight, std=0.05)  # zero-initialized: give it an output to compare
    return net.eval()


def test_weights_round_trip_through_safetensors(tmp_path):
    net = _net(["rubber duck", "snowman"])
    save_denoiser(net, tmp_path / "d.safetensors", {"steps": 7})
    loaded, meta = load_denoiser(tmp_path / "d.safetensors")
    assert meta["objects"] == ["rubber duck", "snowman"] and meta["steps"] == 7 and tuple(meta["channels"]) == SMALL
    x, t = torch.randn(3, 3, 64, 64), torch.tensor([5, 400, 990])
    c = torch.stack([net.condition(0, "back"), net.condition(None, None), net.condition(1, None)])
    with torch.no_grad():
        assert torch.equal(net(x, t, c), loaded(x, t, c))
        assert net(x, t, c).abs().mean() > 0.01


def test_a_file_that_is_not_a_denoiser_is_refused(tmp_path):
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a toy denoiser"):
        load_denoiser(tmp_path / "other.safetensors")


def test_conditioning_is_one_hot_and_linear():
    net = _net(["rubber duck", "snowman"])
    c = net.condition(1, "back")
    assert c.tolist() == [0, 1, 0, 0, 0, 1, 0, 0] and net.cond_dim == 8
    assert net.condition(None, None).tolist() == [0, 0, 1, 0, 0, 0, 0, 1]
    # a blend of two prompts' vectors (Perp-Neg) embeds as the blend of their embeddings
    a, b = net.condition(0, "front"), net.condition(0, "side")
    assert torch.allclose(net.cond(0.3 * a + 0.7 * b), 0.3 * net.cond(a) + 0.7 * net.cond(b), atol=1e-6)


@pytest.fixture()
def trained_prior(small_catalogue, tmp_path):
    from dreamer.toy.trained_prior import TrainedToyPrior
    net = _net(["rubber duck", "snowman"])  # the catalogue's mushroom is not among them
    save_denoiser(net, tmp_path / "d.safetensors")
    return TrainedToyPrior(tmp_path / "d.safetensors", small_catalogue, refs_per_object=48), net


def test_the_prior_predicts_the_networks_noise(trained_prior):
    prior, net = trained_prior
    emb = prior.embed(["a snowman, back view", "", "a rubber duck"])
    assert emb.tolist()[0] == net.condition(1, "back").tolist()
    assert emb.tolist()[1] == net.condition(None, None).tolist()
    x, t = torch.randn(3, 3, 64, 64), torch.tensor([20, 500, 980])
    with torch.no_grad():
        assert torch.equal(prior.predict_noise(x, t, emb), net(x, t, emb))


def test_an_object_the_network_never_saw_is_a_user_error(trained_prior):
    prior, _ = trained_prior
    with pytest.raises(UserError, match="not trained on 'mushroom' \\(it knows rubber duck, snowman\\)"):
        prior.check_prompt("a mushroom")


def test_the_trained_world_needs_its_weights_up_front(tmp_path):
    from dreamer.config import build_config
    from dreamer.pipeline import validate
    from dreamer.priors.factory import check_prior
    (tmp_path / "notes.txt").write_text("not weights")
    for path, match in [(None, "needs prior.denoiser"), (tmp_path / "missing.safetensors", "needs prior.denoiser"),
                        (tmp_path / "notes.txt", "not a safetensors file")]:
        with pytest.raises(UserError, match=match):
            check_prior(PriorConfig(world="trained", denoiser=None if path is None else str(path)))
    save_denoiser(_net(["rubber duck", "snowman"]), tmp_path / "d.safetensors")
    cfg = build_config(values={"prompt": "a mushroom", "prior": {"world": "trained", "denoiser": str(tmp_path / "d.safetensors")}})
    with pytest.raises(UserError, match="not trained on 'mushroom'"):
        validate(cfg)
    validate(build_config(values={"prompt": "a snowman, back view", "prior": {"world": "trained",
                                                                             "denoiser": str(tmp_path / "d.safetensors")}}))


def _refs(n_per_object=400, objects=2):
    """Synthetic references: azimuths spread over the circle, labels by azimuth as the cameras' are."""
    g = torch.Generator().manual_seed(1)
    n = n_per_object * objects
    az = torch.rand(n, generator=g) * 360 - 180
    labels = torch.where(az.abs() < 45, 0, torch.where(az.abs() < 135, 1, 2))
    return ReferenceSet(torch.zeros(n, 3, 64, 64), torch.arange(objects).repeat_interleave(n_per_object), labels,
                        torch.zeros(n), az, torch.zeros(n, 64, 64))


def test_captions_follow_their_definition():
    refs, cap, size = _refs(), Captions(lean=3.0, p_empty=0.1, p_view=0.5, p_right=0.5), 40000
    idx, cond = caption_batch(refs, 2, size, cap, torch.Generator().manual_seed(0))
    empty = cond[:, 2] == 1
    assert abs(empty.float().mean() - 0.1) < 0.01
    cos = torch.cos(torch.deg2rad(refs.azimuth.double()))
    w = torch.exp(3 * cos)
    expected = float((w * cos).sum() / w.sum())  # the captions' lean: the mean cos(azimuth) they show
    assert abs(float(cos[idx[~empty]].mean()) - expected) < 0.01
    assert abs(float(cos[idx[empty]].mean()) - float(cos.mean())) < 0.03  # empty captions: as sampled
    assert (cond[~empty, refs.object_ids[idx[~empty]]] == 1).all()  # the object named is the image's
    word = (cond[:, 3:3 + 4] == 1).any(1)
    assert not word[empty].any() and abs(word[~empty].float().mean() - 0.5) < 0.01
    right = cond[word, 3 + refs.labels[idx[word]]] == 1
    assert abs(right.float().mean() - (0.5 + 0.5 / 4)) < 0.015  # right, or a uniform draw that hits it


def test_training_lowers_the_noise_error(small_catalogue):
    from dreamer.toy.references import load_references
    refs = load_references(small_catalogue, 48, 64)
    torch.manual_seed(0)
    state = new_state(small_catalogue.names(), SMALL)
    start = [p.clone() for p in state.ema.parameters()]
    first = train_steps(state, refs, Captions(), torch.Generator().manual_seed(0), batch=16, max_steps=1)
    assert math.isclose(first, 1.0, abs_tol=0.1)  # the zero-initialized output: the noise's own variance
    last = train_steps(state, refs, Captions(), torch.Generator().manual_seed(1), batch=16, max_steps=150)
    assert state.step == 150 and last < 0.8  # measured 0.64 (the mean of the last 100 steps, lr still warming up)
    assert not torch.equal(state.ema.out.weight, start[-2])  # the EMA follows the training (out.weight)
