"""A trained representation read back from a run folder's checkpoint (for chaining stages), and the
checkpoint layout it is stored in."""
from __future__ import annotations

from .. import checkpoints
from ..errors import UserError
from ..runs import RunDir
from ..yamldata import first_line
from .base import Representation
from .registry import representation_class

PREFIX = "particles"  # the system keeps its representations in a ModuleList of this name


def upgrade_state_dict(state: dict) -> dict:
    """Checkpoints of dreamer 0.1.0 kept particle 0 as `field.*`/`renderer.*` and the others as
    `more_particles.{k-1}.*`; today every particle is `particles.{k}.*`. Returns a renamed copy."""
    if not any(k.startswith(("field.", "renderer.", "more_particles.")) for k in state):
        return state
    out = {}
    for key, value in state.items():
        if key.startswith(("field.", "renderer.")):
            key = f"{PREFIX}.0.{key}"
        elif key.startswith("more_particles."):
            _, k, rest = key.split(".", 2)
            key = f"{PREFIX}.{int(k) + 1}.{rest}"
        out[key] = value
    return out


def particle_extras(extra: dict) -> list[dict]:
    """Each particle's checkpoint_extras (0.1.0 stored particle 0's densify_state at the top)."""
    if "particles" in extra:
        return extra["particles"]
    return [{"densify_state": extra["densify_state"]}] if "densify_state" in extra else []


def load_representation(run_path: str, particle: int = 0) -> Representation:
    """Particle `particle` of a run's last checkpoint, built from the run's own config.yaml."""
    run = RunDir.open(run_path)
    cfg = run.config()
    if not run.checkpoint.is_file():
        raise UserError(f"{run.path} has no checkpoint yet; run `dreamer resume {run.path}` first")
    state = checkpoints.load(run.checkpoint)
    head = f"{PREFIX}.{particle}."
    weights = {k[len(head):]: v for k, v in upgrade_state_dict(state["state_dict"]).items() if k.startswith(head)}
    rep = representation_class(cfg.geometry.type).skeleton(cfg, particle)
    try:
        rep.load_state_dict(weights)
    except RuntimeError as exc:
        raise UserError(checkpoints.damaged_message(run.checkpoint, "its tensors do not fit this run's "
                                                    f"config.yaml: {first_line(exc, 60)}")) from None
    extras = particle_extras(state.get("dreamer", {}))
    if particle < len(extras):
        rep.load_checkpoint_extras(extras[particle])
    return rep.eval()
