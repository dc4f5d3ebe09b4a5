"""Score-distillation guidance methods, each a small module on one shared base."""
from .base import Guidance  # noqa: F401
from .sds import SDSGuidance

METHODS = {"sds": SDSGuidance}


def build_guidance(cfg, prior, max_steps: int) -> Guidance:
    return METHODS[cfg.method](cfg, prior, max_steps)
