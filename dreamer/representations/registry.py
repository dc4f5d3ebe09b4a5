"""geometry.type -> the representation class. A new representation is a module, an entry here, its
name in the schema's geometry.type choices (tests hold the two in step) and its recipes."""
from __future__ import annotations

from ..errors import UserError
from .base import Representation
from .gaussians import Gaussians
from .mesh import Mesh
from .nerf import NeRF
from .texture import UVTexture

REPRESENTATIONS: dict[str, type[Representation]] = {cls.name: cls for cls in (NeRF, Gaussians, Mesh, UVTexture)}


def representation_class(name: str) -> type[Representation]:
    if name not in REPRESENTATIONS:
        raise UserError(f"unknown geometry.type '{name}'; choose one of: {', '.join(REPRESENTATIONS)}")
    return REPRESENTATIONS[name]
