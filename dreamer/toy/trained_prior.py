"""The `trained` toy world: the prior's noise prediction is a small UNet trained on the references
(dreamer/toy/denoiser.py), not a formula.

A network that under-fits generalizes the way a real prior does: it blends, composes and follows
its captions' front lean where the mixture's exact score picks the nearest reference. It is no
longer the score of a stated distribution: it is whatever the training (denoiser_training.py)
made of the references. Ground truth, references (for the fake score) and prompts are the toy
world's; prompts may name only the objects the network was trained on.
"""
from __future__ import annotations

import torch

from .denoiser import load_denoiser
from .denoiser_file import check_trained_on
from .prior import ToyPrior


class TrainedToyPrior(ToyPrior):
    def __init__(self, weights, *args, **kwargs):
        kwargs["world"] = "exact"  # the references are loaded as for the exact world; the scores are the net's
        super().__init__(*args, **kwargs)
        self.net, _ = load_denoiser(weights)  # check_prior has read its metadata
        self.world = "trained"

    def check_prompt(self, prompt: str) -> None:
        self._conditioning(prompt)

    def _conditioning(self, prompt: str) -> torch.Tensor:
        obj, label = self.catalogue.resolve(prompt)
        if obj is None:
            return self.net.condition(None, label)
        name = self.catalogue.objects[obj].name
        check_trained_on(self.net.objects, name)
        return self.net.condition(self.net.objects.index(name), label)

    def embed(self, prompts: list[str]) -> torch.Tensor:
        return torch.stack([self._conditioning(p) for p in prompts])

    @torch.no_grad()
    def predict_noise(self, x_t, t, emb) -> torch.Tensor:
        eps = self.net(x_t.detach().float().cpu(), t.long().cpu(), emb.float().cpu())
        return eps.to(x_t)
