"""Pick a prior by name: "toy" (the embedded toy world) or a diffusers pipeline (hub id or folder)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..yamldata import clip


def check_prior(cfg):
    """Fail fast on a prior that cannot load: no heavy imports, no network. Returns the resolved
    source of a diffusers prior (None for the toy). The schema has checked the choices already;
    what is left are the rules a choice list cannot say."""
    if cfg.device not in ("auto", "cpu") and not cfg.device.startswith("cuda"):
        raise UserError(f"unknown prior.device '{clip(cfg.device)}'; choose auto, cpu, cuda or cuda:N")
    if cfg.resolution < 0 or cfg.resolution % 8:
        raise UserError(f"prior.resolution must be 0 (the UNet's own) or a multiple of 8, got {cfg.resolution}")
    if cfg.name == "toy":
        if 64 % cfg.posterior_resolution:
            raise UserError(f"prior.posterior_resolution must divide 64 (1, 2, 4, 8, 16, 32 or 64), got {cfg.posterior_resolution}")
        if cfg.local_window % 2 == 0 and cfg.local_window:
            raise UserError(f"prior.local_window must be 0 (off) or odd, so the window centres on its pixel; got {cfg.local_window}")
        if cfg.world == "trained":
            denoiser_metadata(cfg.denoiser)
        return None
    from .hub import resolve  # start-up: huggingface_hub, for real priors only
    return resolve(cfg.name, cfg.revision)


def denoiser_metadata(path) -> dict:
    """The trained world's weights file's metadata (its objects); UserError if it is missing or not one."""
    from ..toy.denoiser_file import read_metadata  # start-up: only the trained world reads it
    fix = "train one with docs/bench-quality/train_toy_denoiser.py"
    if not path or not Path(path).is_file():
        raise UserError(f"prior.world=trained needs prior.denoiser, a weights file (got {clip(str(path))}); {fix}")
    try:
        return read_metadata(path)
    except ValueError as exc:
        raise UserError(f"prior.denoiser: {exc}; {fix}") from None


def build_prior(cfg, progress=None):
    source = check_prior(cfg)
    if source is None:
        from ..toy.catalogue import Catalogue  # start-up: torch loads after the checks above
        from ..toy.prior import ToyPrior  # start-up
        catalogue = Catalogue.with_extension(cfg.catalogue)
        if cfg.world == "trained":
            from ..toy.trained_prior import TrainedToyPrior  # start-up
            return TrainedToyPrior(cfg.denoiser, catalogue, resolution=64, refs_per_object=cfg.refs_per_object,
                                   progress=progress)
        return ToyPrior(catalogue, resolution=64, refs_per_object=cfg.refs_per_object,
                        view_fidelity=cfg.view_fidelity, progress=progress, world=cfg.world,
                        posterior_resolution=cfg.posterior_resolution, posterior_temperature=cfg.posterior_temperature,
                        front_lean=cfg.front_lean, view_blind=cfg.view_blind, weigh_on=cfg.weigh_on,
                        view_odds=cfg.view_odds, lean_empty_prompt=cfg.lean_empty_prompt,
                        local_window=cfg.local_window, local_below=cfg.local_below,
                        local_temperature=cfg.local_temperature)
    from .diffusers_prior import load_diffusers_prior  # start-up: diffusers
    return load_diffusers_prior(source, cfg, progress)
