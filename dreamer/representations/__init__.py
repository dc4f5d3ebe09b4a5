"""3D representations behind one contract (base.py): what a run optimizes and exports."""
from .base import FieldRepresentation, Representation
from .registry import REPRESENTATIONS, representation_class
from .stored import load_representation

__all__ = ["FieldRepresentation", "Representation", "REPRESENTATIONS", "representation_class",
           "load_representation", "make_representation"]


def make_representation(cfg, particle: int = 0, restore: bool = False) -> Representation:
    """A fresh representation for geometry.type, or one created from the previous stage's run;
    `restore`: only its structure, because a checkpoint is about to fill it."""
    cls = representation_class(cfg.geometry.type)
    if restore:
        return cls.skeleton(cfg, particle)
    previous = cls.previous_run(cfg)
    if previous:
        return cls.create_from(cfg, load_representation(previous), particle)
    return cls(cfg, particle)
