"""Where an exported asset stands: its real-world height and its pivot (the origin engines place it
by). Convention: +Y up, front +Z, metres; pivot "base" stands the object on y = 0 centred in x and
z, "center" puts the centre of its bounding box at the origin."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Placement:
    scale: float  # metres per field unit
    offset: tuple  # (3,) metres, added after scaling


def placement(vertices: np.ndarray, height: float, pivot: str) -> Placement:
    """The scale and offset that give `vertices` the height `height` and the pivot `pivot`."""
    lo, hi = vertices.min(0).astype(np.float64), vertices.max(0).astype(np.float64)
    scale = height / max(hi[1] - lo[1], 1e-12)
    centre = (lo + hi) / 2
    anchor = np.array([centre[0], lo[1] if pivot == "base" else centre[1], centre[2]])
    return Placement(float(scale), tuple(float(v) for v in -anchor * scale))
