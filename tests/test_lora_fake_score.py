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
    base_before = {k: v.clone() for k, v in unet.state_dict().items()}
    fake = LoRAFakeScore(unet, sd_alphas_cumprod().float(), rank=4)
    with torch.no_grad():
        assert torch.allclose(fake(x_t, t, emb, camera), unet(x_t, t, encoder_hidden_states=emb).sample, atol=1e-5)
    trainable = [n for n, p in fake.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n or "class_embedding" in n for n in trainable)
    opt = torch.optim.Adam([p for p in fake.parameters() if p.requires_grad], lr=1e-2)
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
    with torch.no_grad():  # the camera now matters, and the prior's own UNet never changed
        assert not torch.allclose(fake(x_t, t, emb, camera), fake(x_t, t, emb, torch.zeros_like(camera)), atol=1e-4)
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in base_before.items())
    assert fake.evaluations == 4 * (1 + steps + 2)  # every forward, counted per sample


def test_checkpoint_holds_only_trainable_tensors_and_round_trips(setup):
    unet, x_t, t, emb, camera = setup
    fake = LoRAFakeScore(unet, sd_alphas_cumprod().float())
    with torch.no_grad():
        for p in fake.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    state = fake.state_dict()
    n_trainable = sum(1 for p in fake.parameters() if p.requires_grad)
    assert len(state) == n_trainable
    other = LoRAFakeScore(unet, sd_alphas_cumprod().float())
    other.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(other(x_t, t, emb, camera), fake(x_t, t, emb, camera), atol=1e-6)


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
