"""Pick a prior by name: "toy" (the embedded toy world) or a diffusers pipeline (hub id or folder)."""
from __future__ import annotations

from ..errors import UserError

CHOICES = {"device": None, "dtype": ("auto", "float32", "float16", "bfloat16"),
           "vae_mode": ("sample", "mean"), "attention": ("sdpa", "default")}


def check_prior(cfg):
    """Fail fast on a prior that cannot load: no heavy imports, no network. Returns the resolved
    source of a diffusers prior (None for the toy)."""
    for key, options in CHOICES.items():
        value = getattr(cfg, key)
        if key == "device":
            if value not in ("auto", "cpu") and not value.startswith("cuda"):
                raise UserError(f"unknown prior.device '{value}'; choose auto, cpu, cuda or cuda:N")
        elif value not in options:
            raise UserError(f"unknown prior.{key} '{value}'; choose one of: {', '.join(options)}")
    if cfg.resolution < 0 or cfg.resolution % 8:
        raise UserError(f"prior.resolution must be 0 (the UNet's own) or a multiple of 8, got {cfg.resolution}")
    if cfg.name == "toy":
        return None
    from .hub import resolve
    return resolve(cfg.name, cfg.revision)


def build_prior(cfg, progress=None):
    source = check_prior(cfg)
    if source is None:
        from ..toy.catalogue import Catalogue
        from ..toy.prior import ToyPrior
        return ToyPrior(Catalogue.with_extension(cfg.catalogue), resolution=64, refs_per_object=cfg.refs_per_object,
                        view_fidelity=cfg.view_fidelity, progress=progress)
    from .diffusers_prior import load_diffusers_prior
    return load_diffusers_prior(source, cfg, progress)
