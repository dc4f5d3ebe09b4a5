"""Pick a prior by name."""
from __future__ import annotations

from ..errors import UserError


def check_prior_name(name: str) -> None:
    if name != "toy":
        raise UserError(f"prior '{name}' is not available: this version ships only the embedded toy "
                        f"prior (--prior toy); diffusers checkpoints are not supported yet")


def build_prior(cfg, progress=None):
    check_prior_name(cfg.name)
    from ..toy.catalogue import Catalogue
    from ..toy.prior import ToyPrior
    return ToyPrior(Catalogue.with_extension(cfg.catalogue), resolution=64, refs_per_object=cfg.refs_per_object, view_fidelity=cfg.view_fidelity,
                    progress=progress)
