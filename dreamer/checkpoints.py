"""Reading run checkpoints safely: tensors and plain data only, and a clear line when one is damaged.

A checkpoint is a file in a run folder that anyone may have replaced, so it is never unpickled
with arbitrary classes: `torch.load(weights_only=True)` allows tensors, containers and numbers,
plus the few types listed here that our checkpoints hold. A truncated or foreign file is refused
with the newest intact `step-N.ckpt` to fall back to.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import UserError
from .yamldata import first_line


def load(path: Path) -> dict:
    """The checkpoint's contents, or UserError naming the damaged file and the fallback."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle refused by the allow-list, garbage
        raise UserError(damaged_message(path, first_line(exc, 80))) from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise UserError(damaged_message(path, "no state_dict"))
    return state


def intact(path: Path) -> bool:
    try:
        load(path)
        return True
    except UserError:
        return False


def newest_intact(folder: Path) -> Path | None:
    """The latest step-N.ckpt that loads (they are named step-000300.ckpt, so names sort by step)."""
    for path in sorted(folder.glob("step-*.ckpt"), reverse=True):
        if intact(path):
            return path
    return None


def damaged_message(path: Path, why: str) -> str:
    fallback = newest_intact(path.parent) if path.name == "last.ckpt" else None
    fix = (f"copy the newest intact checkpoint over it (cp {fallback} {path}) and run the command again"
           if fallback else "no intact step-N.ckpt is left, so start a new run")
    return f"checkpoint {path} is damaged or not a dreamer checkpoint ({why}); {fix}"
