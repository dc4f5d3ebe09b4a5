"""`dreamer bench prior`: how close an SDS step on a real-size latent prior is to its UNet floor.

The prior is Stable Diffusion 2.1-base's architecture with random weights, built from the configs
in configs/models/sd21-base (compute does not depend on the weights, so no download is needed).
Each batch size runs the DreamFusion recipe's real training loop (render -> resize -> VAE encode
with gradient -> SDS -> backward -> Adam) and reports, per step (median over the timed steps):
  - step: the whole step;
  - unet_in_step: the UNet calls inside it, each timed between device synchronisations;
  - unet_alone: the same UNet calls (same batch shape, same count) run back to back on their own;
  - ratio: step / unet_alone, the figure to drive towards 1 (design.md section 6).
On a CPU pass --image-size 64 (8x8 latents) and small renders, or it takes minutes per step.
"""
from __future__ import annotations

import json
import statistics
import time

import pytorch_lightning as pl
import torch

from systems.text_to_3d import TextTo3DSystem
from systems.trainer import fit, make_trainer

from ..config import CONFIG_DIR, PriorConfig, build_config
from ..priors.diffusers_prior import DiffusersPrior, _quiet_loaders
from ..priors.loading import apply_gpu_options, pick_device, pick_dtype, vae_dtype

MODEL_DIR = CONFIG_DIR / "models" / "sd21-base"


class RandomTextPrior(DiffusersPrior):
    """Text embeddings are random tensors of the encoder's output shape: the bench times steps."""

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randn(len(prompts), 77, self.unet.config.cross_attention_dim, generator=g)


class UNetClock:
    """Wraps a UNet call: synchronised wall time per call and the input shapes seen."""

    def __init__(self, fn, device: torch.device):
        self.fn, self.device, self.seconds, self.calls = fn, device, 0.0, []

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, x, t, **kwargs):
        self.sync()
        start = time.perf_counter()
        out = self.fn(x, t, **kwargs)
        self.sync()
        self.seconds += time.perf_counter() - start
        self.calls.append((x, t, kwargs))
        return out


def build_random_prior(model_dir=MODEL_DIR, device: str = "auto", dtype: str = "auto", image_size: int = 0,
                       prior_overrides: dict | None = None) -> RandomTextPrior:
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    _quiet_loaders()
    cfg = PriorConfig(name="random-weights", device=device, dtype=dtype, resolution=image_size,
                      embedding_cache=False, **(prior_overrides or {}))
    dev = pick_device(cfg.device)
    dt = pick_dtype(cfg.dtype, dev)
    read = lambda name: json.loads((model_dir / f"{name}.json").read_text())
    torch.manual_seed(0)
    with torch.device(dev):  # initialise in place: a CPU init of 865M parameters takes a while
        unet = UNet2DConditionModel.from_config(read("unet")).to(dt)
        vae = AutoencoderKL.from_config(read("vae"))
        vae = vae.to(vae_dtype("sd", vae.config, dt)).requires_grad_(False).eval()  # as a real SD run has it
    scheduler = PNDMScheduler.from_config(read("scheduler"))
    return RandomTextPrior(apply_gpu_options(unet, cfg), scheduler, vae=vae, cfg=cfg, device=dev)


def unet_alone(prior: RandomTextPrior, calls: list, repeats: int) -> float:
    """Seconds for `calls` (one step's UNet inputs) run back to back, median over repeats."""
    clock, times = UNetClock(prior.unet, prior.device), []
    with torch.no_grad():
        for _ in range(repeats + 1):
            clock.seconds = 0.0
            for x, t, kwargs in calls:
                clock(x, t, **kwargs)
            times.append(clock.seconds)
    return statistics.median(times[1:])  # the first run warms up kernels and caches


def run(batch_sizes=(1, 4), steps: int = 10, warmup: int = 3, image_size: int = 0, render_size: int = 64,
        samples_per_ray: int = 512, device: str = "auto", dtype: str = "auto", model_dir=MODEL_DIR,
        say=print) -> list[dict]:
    prior = build_random_prior(model_dir, device, dtype, image_size)
    say(f"prior: SD 2.1-base architecture, random weights, {prior.unet_dtype}, {prior.device}, "
        f"{prior.image_resolution}px images -> {prior.resolution}x{prior.resolution} latents")
    clock = UNetClock(prior._unet_forward, prior.device)
    prior._unet_forward = clock
    rows = []
    for batch in batch_sizes:
        cfg = build_config(CONFIG_DIR / "dreamfusion-sd21.yaml", values={
            "prompt": "a hamburger", "camera": {"batch_size": batch, "width": [render_size], "height": [render_size]},
            "renderer": {"num_samples_per_ray": samples_per_ray}, "trainer": {"max_steps": warmup + steps}})
        per_step: list[tuple[float, float, list]] = []

        class Clock(pl.Callback):
            def __init__(self, per_step=per_step):
                self.per_step = per_step

            def on_train_batch_start(self, trainer, module, b, i):
                clock.sync()
                clock.seconds, clock.calls = 0.0, []
                self.start = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, b, i):
                clock.sync()
                if trainer.global_step > warmup:
                    self.per_step.append((time.perf_counter() - self.start, clock.seconds, list(clock.calls)))

        torch.manual_seed(0)
        fit(make_trainer(warmup + steps, [Clock()]), TextTo3DSystem(cfg, prior))
        step = statistics.median(s for s, _, _ in per_step)
        in_step = statistics.median(u for _, u, _ in per_step)
        alone = unet_alone(prior, per_step[-1][2], repeats=min(5, steps))
        row = {"batch": batch, "step_s": step, "unet_in_step_s": in_step, "unet_alone_s": alone,
               "ratio": step / alone, "unet_calls": len(per_step[-1][2]),
               "unet_batch": int(per_step[-1][2][0][0].shape[0])}
        say(f"batch {batch}: step {step:.4f} s, UNet in step {in_step:.4f} s, UNet alone {alone:.4f} s, "
            f"ratio {row['ratio']:.2f}")
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| views per step | SDS step (s) | UNet in the step (s) | UNet alone (s) | step / UNet alone | UNet calls x batch |",
             "|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['step_s']:.4f} | {r['unet_in_step_s']:.4f} | {r['unet_alone_s']:.4f} | "
                     f"{r['ratio']:.2f} | {r['unet_calls']} x {r['unet_batch']} |")
    return "\n".join(lines)
