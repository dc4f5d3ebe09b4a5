"""From a prompt and a batch of cameras to the conditioning guidance sees (dreamer.guidance.Conditioning).

View-dependent prompting appends ", front view" (side, back, overhead) by the camera's view
label. Perp-Neg instead blends the view prompts' embeddings by azimuth and adds the other views
as negatives with weights f(r) = a exp(-b r) + c (specs/guidance-sds-vsd-esd-csd-asd.md section 6):
  |azimuth| < 90:  r = 1 - |az| / 90, positive r front + (1 - r) side, negatives front, side
                   with weights -f_fs(r), -f_sf(1 - r)
  otherwise:       r = 2 - |az| / 90, positive r side + (1 - r) back, negatives side, front
                   with weights -f_sb(r), -f_fsb(r)
  overhead:        the overhead prompt, zero negative weights.
Embeddings are computed once per distinct prompt and kept.
"""
from __future__ import annotations

import math

import torch

from .cameras import view_labels, view_prompt
from .guidance.base import Conditioning


def decay(params, r: float) -> float:
    a, b, c = params
    return a * math.exp(-b * r) + c


def blend(a: torch.Tensor, b: torch.Tensor, r: float) -> torch.Tensor:
    """r a + (1 - r) b, returning a or b itself at the ends (embeddings may hold -inf)."""
    if r >= 1:
        return a
    if r <= 0:
        return b
    return r * a + (1 - r) * b


class PromptProcessor:
    def __init__(self, prior, prompt: str, guidance_cfg, camera_cfg):
        self.prior, self.prompt, self.cfg, self.camera_cfg = prior, prompt, guidance_cfg, camera_cfg
        self._cache: dict[str, torch.Tensor] = {}

    def embedding(self, prompt: str) -> torch.Tensor:
        if prompt not in self._cache:
            self._cache[prompt] = self.prior.embed([prompt])[0]
        return self._cache[prompt]

    def view(self, label: str) -> torch.Tensor:
        return self.embedding(view_prompt(self.prompt, label))

    def __call__(self, cams) -> Conditioning:
        B, c = len(cams), self.camera_cfg
        labels = view_labels(cams.elevation, cams.azimuth, c.front_threshold, c.back_threshold,
                             c.overhead_threshold)
        plain = self.embedding(self.prompt)
        null = self.embedding("")
        negative = self.embedding(self.cfg.negative_prompt)
        neg_embs = neg_weights = None
        if self.cfg.perp_neg.enabled:
            rows = [self.perp_neg_row(float(az), lb) for az, lb in zip(cams.azimuth.tolist(), labels)]
            cond = torch.stack([r[0] for r in rows])
            neg_embs = torch.stack([torch.stack(r[1]) for r in rows])
            neg_weights = torch.tensor([r[2] for r in rows], dtype=torch.float32)
        elif self.cfg.view_dependent_prompting:
            cond = torch.stack([self.view(lb) for lb in labels])
        else:
            cond = plain.expand(B, *plain.shape)
        expand = lambda e: e.expand(B, *e.shape).contiguous()  # noqa: E731
        return Conditioning(cond=cond, null=expand(null), negative=expand(negative), plain=expand(plain),
                            camera=cams.c2w.reshape(B, 16).float(), perp_neg_embeddings=neg_embs,
                            perp_neg_weights=neg_weights)

    def perp_neg_row(self, azimuth: float, label: str):
        """(positive embedding, [2 negative embeddings], [2 weights]) for one camera."""
        p = self.cfg.perp_neg
        front, side, back = self.view("front"), self.view("side"), self.view("back")
        if label == "overhead":
            return self.view("overhead"), [front, side], [0.0, 0.0]
        az = abs(azimuth)
        if az < 90:
            r = 1 - az / 90
            return blend(front, side, r), [front, side], [-decay(p.f_fs, r), -decay(p.f_sf, 1 - r)]
        r = 2 - az / 90
        return blend(side, back, r), [side, front], [-decay(p.f_sb, r), -decay(p.f_fsb, r)]
