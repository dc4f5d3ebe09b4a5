"""The UNet fake score (LoRA via peft, camera through the class-embedding slot) on a tiny
random-weight UNet built from a config: no download."""
import pytest
import torch

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("peft")

from dreamer.priors.base import sd_alphas_cumprod, v_to_eps  # noqa: E402
from dreamer.priors.lora_fake_score import LoRAFakeScore  # noqa: E402


def tiny_unet():
    torch.manual_seed(0)
    return diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)


@pytest.fixture(scope="module")
def setup():
    unet = tiny_unet()
    gen = torch.Generator().manual_seed(1)
    x_t = torch.randn(4, 4, 16, 16, generator=gen)
    t = torch.tensor([10, 300, 600, 900])
    emb = torch.randn(4, 7, 32, generator=gen)
    camera = torch.randn(4, 16, generator=gen)
    return unet, x_t, t, emb, camera


def test_starts_equal_to_the_prior_and_trains_only_lora_and_camera(setup):
    unet, x_t, t, emb, camera = setup
    with torch.no_grad():
        prior_before = unet(x_t, t, encoder_hidden_states=emb).sample
    fake = LoRAFakeScore(unet, sd_alphas_cumprod().float(), rank=4)
    with torch.no_grad():
        assert torch.allclose(fake(x_t, t, emb, camera), prior_before, atol=1e-5)
    assert fake.unet is unet  # shared, not copied
    unet_tensors = {id(p) for n, p in unet.named_parameters() if ".lora_" not in n}
    assert not unet_tensors & {id(p) for p in fake.parameters()}  # only LoRA and camera belong to it
    opt = torch.optim.Adam(fake.parameters(), lr=1e-2)
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(2))
    losses = []
    steps = 25
    for _ in range(steps):
        loss = ((fake(x_t, t, emb, camera) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    with torch.no_grad():  # the camera now matters, and the prior's own pass never changed
        assert not torch.allclose(fake(x_t, t, emb, camera), fake(x_t, t, emb, torch.zeros_like(camera)), atol=1e-4)
        assert torch.equal(unet(x_t, t, encoder_hidden_states=emb).sample, prior_before)
    assert fake.evaluations == 4 * (1 + steps + 2)  # every forward, counted per sample


def test_two_fake_scores_on_one_unet_stay_apart(setup):
    unet, x_t, t, emb, camera = setup
    a = LoRAFakeScore(unet, sd_alphas_cumprod().float())
    b = LoRAFakeScore(unet, sd_alphas_cumprod().float())
    with torch.no_grad():
        before = b(x_t, t, emb, camera)
        for p in a.parameters():
            p.add_(0.05)
        assert torch.equal(b(x_t, t, emb, camera), before)
        assert not torch.allclose(a(x_t, t, emb, camera), before, atol=1e-4)


def test_checkpoint_holds_only_trainable_tensors_under_stable_names_and_round_trips(setup):
    unet, x_t, t, emb, camera = setup
    fake = LoRAFakeScore(unet, sd_alphas_cumprod().float())
    with torch.no_grad():
        for p in fake.parameters():
            p.add_(0.01 * torch.randn_like(p))
    state = fake.state_dict()
    assert len(state) == len(list(fake.parameters()))
    # the names a UNet copy with peft's "default" adapter gave them (runs of dreamer 0.2 resume)
    assert all(k.startswith("unet.") and (".default." in k or k.startswith("unet.class_embedding.")) for k in state)
    # parameter order (which the optimizer state in a checkpoint follows): the UNet's LoRA weights
    # in module order, then the camera, as a UNet copy gave them
    marker = f".{fake.adapter}."
    unet_order = ["unet." + n.replace(marker, ".default.") for n, _ in unet.named_parameters() if marker in n]
    camera_names = ["unet.class_embedding." + n for n, _ in fake.camera.named_parameters()]
    ours = [fake._saved_names[n[len("lora."):]] if n.startswith("lora.") else "unet.class_embedding." + n[len("camera."):]
            for n, _ in fake.named_parameters()]
    assert ours == unet_order + camera_names
    other = LoRAFakeScore(tiny_unet(), sd_alphas_cumprod().float())  # another process: its own UNet
    other.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(other(x_t, t, emb, camera), fake(x_t, t, emb, camera), atol=1e-6)


def _fp16_case(batch=2, size=64):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, size, size, generator=gen)  # SD's latent size: per-element gradients ~1e-5
    t = torch.tensor([100, 700, 300, 900])[:batch]
    return (x, t, torch.randn(batch, 7, 32, generator=gen), torch.randn(batch, 16, generator=gen),
            torch.randn(x.shape, generator=gen))


def _fake_gradients(dtype, loss_scale=None, size=64):
    x, t, emb, camera, noise = _fp16_case(size=size)
    fake = LoRAFakeScore(tiny_unet().to(dtype), sd_alphas_cumprod().float())
    torch.manual_seed(5)
    with torch.no_grad():  # as if trained a little: every LoRA weight and the camera get a gradient
        for p in fake.parameters():
            p.add_(0.05 * torch.randn_like(p))
    if loss_scale is not None:
        fake.loss_scale = loss_scale
    ((fake(x, t, emb, camera) - noise) ** 2).mean().backward()
    fake.after_backward()
    return fake, [p.grad for p in fake.parameters()]


def test_an_fp16_unet_gets_fp32_weights_and_gradients_that_survive():
    """Adam's eps (1e-15) is 0 in fp16 and LoRA's first A-gradient is 0: fp16 weights went NaN at
    their first step. Small gradients through an fp16 backward flush to zero without loss scaling."""
    x, t, emb, camera, noise = _fp16_case()
    x, t, emb, camera, noise = (v[:1, ..., :16, :16] if v.dim() == 4 else v[:1] for v in (x, t, emb, camera, noise))
    fake = LoRAFakeScore(tiny_unet().half(), sd_alphas_cumprod().float())
    assert {p.dtype for p in fake.parameters()} == {torch.float32}
    opt = torch.optim.Adam(fake.parameters(), lr=1e-3, eps=1e-15)
    for _ in range(2):
        opt.zero_grad()
        ((fake(x, t, emb, camera) - noise) ** 2).mean().backward()
        fake.after_backward()
        opt.step()
        assert all(torch.isfinite(p).all() for p in fake.parameters())

    _, reference = _fake_gradients(torch.float32)
    _, scaled = _fake_gradients(torch.float16)
    _, unscaled = _fake_gradients(torch.float16, loss_scale=1.0)
    reference, scaled, unscaled = (torch.cat([g.flatten() for g in grads]) for grads in (reference, scaled, unscaled))
    error = lambda g: float((g - reference).norm() / reference.norm())  # noqa: E731
    assert error(scaled) < 0.01
    assert error(unscaled) > 5 * error(scaled)  # what scaling fixes: flushed and rounded gradients
    assert (unscaled == 0).sum() > (scaled == 0).sum()


def test_an_overflowing_loss_scale_drops_the_step_and_backs_off():
    fake, grads = _fake_gradients(torch.float16, loss_scale=2.0 ** 40, size=16)
    assert all(g is None for g in grads)
    assert fake.loss_scale == 2.0 ** 39


def test_v_prediction_converts_to_epsilon_as_the_scheduler_defines_v():
    sched = diffusers.DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                    prediction_type="v_prediction")
    gen = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(3, 4, 8, 8, generator=gen), torch.randn(3, 4, 8, 8, generator=gen)
    t = torch.tensor([1, 500, 999])
    v = sched.get_velocity(x0, eps, t)
    x_t = sched.add_noise(x0, eps, t)
    assert torch.allclose(v_to_eps(x_t, v, t, sched.alphas_cumprod), eps, atol=1e-5)
    assert torch.allclose(sched.alphas_cumprod.double(), sd_alphas_cumprod(), atol=1e-6)
