"""The hash-grid NeRF: a radiance field drawn by volume rendering over an occupancy grid."""
from __future__ import annotations

import torch

from ..geometry.hashgrid import check_backend
from ..geometry.nerf import NeRFField
from ..schedule import evaluate
from renderers.volume import VolumeRenderer

from .base import FieldRepresentation


class NeRF(FieldRepresentation):
    name = "nerf"

    def __init__(self, cfg, particle: int = 0):
        super().__init__(cfg, particle)
        self.field = NeRFField(cfg.geometry)
        self.renderer = VolumeRenderer(cfg.renderer, cfg.geometry.radius)
        self.color_channels = self.field.color_channels

    @classmethod
    def validate(cls, cfg) -> None:
        check_backend(cfg.geometry.pos_encoding)
        VolumeRenderer.check_backend(cfg.renderer, cuda=torch.cuda.is_available())

    def parameter_groups(self) -> dict:
        return self.field.parameter_groups()

    def prepare_step(self, step, generator) -> None:
        self.renderer.update_occupancy(self.field, step, generator)

    def regularizers(self, out, step) -> torch.Tensor:
        """The shared opacity terms, plus orientation: normals should not face away from the camera
        where the ray is opaque (DreamFusion's orientation loss)."""
        total = super().regularizers(out, step)
        lam = evaluate(self.cfg.loss.lambda_orient, step)
        if lam and out["orient"].numel():
            total = total + lam * out["orient"].mean()
        return total
