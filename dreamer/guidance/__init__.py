"""Score-distillation guidance methods, each a small module on one shared base."""
from .asd import ASDGuidance
from .base import Conditioning, Guidance  # noqa: F401
from .bsd import BSDGuidance
from .cds import CDSGuidance
from .csd import CSDGuidance, CSMGuidance
from .dsd import DSDGuidance
from .interval import ISMGuidance, TSMGuidance
from .nfsd import NFSDGuidance
from .sds import SDSGuidance
from .variational import ESDGuidance, VSDGuidance

METHODS = {cls.name: cls for cls in (SDSGuidance, VSDGuidance, ESDGuidance, CSDGuidance, CSMGuidance,
                                     ASDGuidance, NFSDGuidance, ISMGuidance, TSMGuidance, BSDGuidance,
                                     DSDGuidance, CDSGuidance)}
FAKE_SCORE_METHODS = ("vsd", "esd", "dsd")


def build_guidance(cfg, prior, max_steps: int) -> Guidance:
    return METHODS[cfg.method](cfg, prior, max_steps)
