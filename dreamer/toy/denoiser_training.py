"""Training the `trained` world's denoiser on the toy world's reference renders.

Captions are drawn as a photo collection's would be:
- a share `p_empty` is empty (the unconditional branch), its images drawn as the cameras sampled them;
- the rest name an object, chosen uniformly, and draw its images with the captions' front lean,
  weight exp(lean * cos azimuth), as a photo captioned "a penguin" mostly shows its front;
- a share `p_view` of those also carries a view word, the image's own label with probability
  `p_right`, else a label drawn uniformly, so view words are learned loosely.
The loss is the usual epsilon MSE at t uniform over Stable Diffusion's 1000 steps.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from ..cameras import VIEW_LABELS
from ..priors.base import sd_alphas_cumprod
from .denoiser import ToyDenoiser, condition_vectors


@dataclass
class Captions:
    lean: float = 3.0
    p_empty: float = 0.1
    p_view: float = 0.5
    p_right: float = 0.5


def caption_batch(refs, n_objects: int, size: int, captions: Captions, g: torch.Generator):
    """(indices of the references drawn (size,), conditioning vectors (size, cond_dim) as ToyDenoiser.condition)."""
    lean = torch.exp(captions.lean * torch.cos(torch.deg2rad(refs.azimuth.double())))
    empty = torch.rand(size, generator=g) < captions.p_empty
    objects = torch.randint(0, n_objects, (size,), generator=g)
    idx = torch.randint(0, len(refs.object_ids), (size,), generator=g)  # empty captions: as sampled
    for o in objects[~empty].unique().tolist():
        rows = (~empty & (objects == o)).nonzero().flatten()
        mine = (refs.object_ids == o).nonzero().flatten()
        idx[rows] = mine[torch.multinomial(lean[mine], len(rows), replacement=True, generator=g)]
    label = refs.labels[idx].clone()
    wrong = torch.rand(size, generator=g) >= captions.p_right
    label[wrong] = torch.randint(0, len(VIEW_LABELS), (int(wrong.sum()),), generator=g)
    no_word = empty | (torch.rand(size, generator=g) >= captions.p_view)
    return idx, condition_vectors(n_objects, torch.where(empty, n_objects, refs.object_ids[idx]),
                                  torch.where(no_word, len(VIEW_LABELS), label))


@dataclass
class TrainingState:
    net: ToyDenoiser
    ema: ToyDenoiser
    opt: torch.optim.Optimizer
    step: int = 0


def new_state(objects: list[str], channels=(64, 128, 128)) -> TrainingState:
    net, ema = ToyDenoiser(objects, channels), ToyDenoiser(objects, channels)
    ema.load_state_dict(net.state_dict())
    ema.requires_grad_(False)
    return TrainingState(net, ema, torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.0))


def learning_rate(step: int, decay_from: int | None, decay_steps: int) -> float:
    """1e-3 after 200 warm-up steps; from decay_from, cosine down to 1e-4 over decay_steps."""
    lr = 1e-3 * min(1.0, (step + 1) / 200)
    if decay_from is not None and step >= decay_from:
        u = min(1.0, (step - decay_from) / max(decay_steps, 1))
        lr = 1e-4 + 0.45e-3 * (1 + math.cos(math.pi * u))
    return lr


def train_steps(state: TrainingState, refs, captions: Captions, g: torch.Generator, *, batch: int = 64,
                seconds: float = math.inf, max_steps: int | None = None, decay_from: int | None = None,
                decay_steps: int = 2000, log=None) -> float:
    """Train until `seconds` pass or the step count reaches max_steps; returns the last losses' mean."""
    abar = sd_alphas_cumprod().float()
    images = refs.images.float()
    end, recent = time.monotonic() + seconds, []
    while time.monotonic() < end and (max_steps is None or state.step < max_steps):
        idx, cond = caption_batch(refs, len(state.net.objects), batch, captions, g)
        x0 = images[idx]
        t = torch.randint(0, len(abar), (batch,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = abar[t][:, None, None, None]
        loss = (state.net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t, cond) - eps).pow(2).mean()
        for group in state.opt.param_groups:
            group["lr"] = learning_rate(state.step, decay_from, decay_steps)
        state.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(state.net.parameters(), 1.0)
        state.opt.step()
        state.step += 1
        with torch.no_grad():  # EMA, its decay growing to 0.999 so early weights fade fast
            decay = min(0.999, (1 + state.step) / (10 + state.step))
            for pe, pn in zip(state.ema.parameters(), state.net.parameters()):
                pe.lerp_(pn, 1 - decay)
        recent = (recent + [loss.item()])[-100:]
        if log and state.step % 50 == 0:
            log(state.step, sum(recent) / len(recent))
    return sum(recent) / max(len(recent), 1)


def training_facts(state: TrainingState, captions: Captions, refs_per_object: int) -> dict:
    """What goes into the weights file's metadata: enough to say how the network was made."""
    return {"steps": state.step, "captions": asdict(captions), "refs_per_object": refs_per_object}
