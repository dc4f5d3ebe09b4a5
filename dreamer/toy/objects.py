"""The toy world's built-in objects: procedural shapes made of coloured SDF primitives.

Every object fits inside a sphere of radius 0.8 around the origin, stands with +Y up and faces +Z.
Objects with `has_front` have parts that tell their front from their back (a beak, a nose,
headlights), which is what the Janus score needs.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import torch

from . import sdf as S

YELLOW, ORANGE, BLACK, WHITE = (1.0, 0.82, 0.1), (1.0, 0.45, 0.05), (0.06, 0.06, 0.07), (0.95, 0.95, 0.97)
RED, BLUE, BROWN, GREEN = (0.85, 0.1, 0.08), (0.15, 0.3, 0.9), (0.5, 0.3, 0.15), (0.15, 0.6, 0.2)


@dataclass
class Part:
    kind: str
    params: dict
    center: tuple
    colour: tuple
    rotation: tuple = (0.0, 0.0, 0.0)  # Euler degrees, applied to the primitive

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        local = points - torch.tensor(self.center, dtype=points.dtype)
        if any(self.rotation):
            local = local @ S.rotation_matrix(self.rotation).to(points.dtype)  # R^T applied to rows
        return S.PRIMITIVES[self.kind](local, **self.params)


@dataclass
class ToyObject:
    name: str
    aliases: list
    parts: list
    has_front: bool = False
    description: str = ""

    def query(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signed distance (N,) and albedo (N, 3) of the nearest part."""
        d = torch.stack([p.distance(points) for p in self.parts], -1)
        dist, idx = d.min(dim=-1)
        colours = torch.tensor([p.colour for p in self.parts], dtype=points.dtype)
        return dist, colours[idx]

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        return torch.stack([p.distance(points) for p in self.parts], -1).min(dim=-1).values

    def fingerprint(self) -> str:
        blob = json.dumps([self.name, [p.__dict__ for p in self.parts]], sort_keys=True, default=list)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _eyes(x, y, z, r=0.035, colour=BLACK):
    return [Part("sphere", {"radius": r}, (sx * x, y, z), colour) for sx in (-1, 1)]


def builtin_objects() -> list[ToyObject]:
    duck = ToyObject("rubber duck", ["rubber duck", "rubber ducky", "duck", "duckie"], [
        Part("ellipsoid", {"radii": (0.40, 0.28, 0.50)}, (0, -0.2, -0.05), YELLOW),
        Part("sphere", {"radius": 0.24}, (0, 0.22, 0.16), YELLOW),
        Part("ellipsoid", {"radii": (0.13, 0.05, 0.15)}, (0, 0.17, 0.42), ORANGE),
        Part("ellipsoid", {"radii": (0.12, 0.10, 0.14)}, (0, -0.05, -0.52), YELLOW, (-35, 0, 0)),
        *_eyes(0.1, 0.3, 0.36),
    ], has_front=True, description="yellow duck, orange beak at the front")
    snowman = ToyObject("snowman", ["snowman", "snow man"], [
        Part("sphere", {"radius": 0.32}, (0, -0.42, 0), WHITE),
        Part("sphere", {"radius": 0.24}, (0, 0.03, 0), WHITE),
        Part("sphere", {"radius": 0.18}, (0, 0.37, 0), WHITE),
        Part("cone", {"half_height": 0.11, "r_bottom": 0.05, "r_top": 0.0}, (0, 0.37, 0.27), ORANGE, (90, 0, 0)),
        *_eyes(0.07, 0.43, 0.15),
        Part("cylinder", {"radius": 0.13, "half_height": 0.1}, (0, 0.62, 0), BLACK),
        Part("cylinder", {"radius": 0.2, "half_height": 0.015}, (0, 0.53, 0), BLACK),
        Part("sphere", {"radius": 0.035}, (0, 0.08, 0.23), BLACK),
        Part("sphere", {"radius": 0.035}, (0, -0.04, 0.235), BLACK),
    ], has_front=True, description="three snowballs, carrot nose at the front")
    car = ToyObject("toy car", ["toy car", "car", "race car", "toy vehicle"], [
        Part("box", {"half": (0.3, 0.12, 0.6), "rounding": 0.05}, (0, -0.12, 0), BLUE),
        Part("box", {"half": (0.26, 0.12, 0.28), "rounding": 0.05}, (0, 0.1, -0.1), BLUE),
        *[Part("cylinder", {"radius": 0.13, "half_height": 0.06}, (sx * 0.3, -0.25, sz * 0.38), BLACK, (0, 0, 90))
          for sx in (-1, 1) for sz in (-1, 1)],
        *[Part("sphere", {"radius": 0.065}, (sx * 0.17, -0.1, 0.57), (1.0, 0.95, 0.55)) for sx in (-1, 1)],
        *[Part("box", {"half": (0.07, 0.04, 0.03)}, (sx * 0.17, -0.08, -0.6), RED) for sx in (-1, 1)],
    ], has_front=True, description="blue car, yellow headlights at the front, red tail lights at the back")
    penguin = ToyObject("penguin", ["penguin", "toy penguin"], [
        Part("ellipsoid", {"radii": (0.3, 0.45, 0.28)}, (0, -0.15, 0), BLACK),
        Part("ellipsoid", {"radii": (0.24, 0.37, 0.16)}, (0, -0.18, 0.14), WHITE),
        Part("sphere", {"radius": 0.2}, (0, 0.38, 0), BLACK),
        Part("cone", {"half_height": 0.07, "r_bottom": 0.05, "r_top": 0.0}, (0, 0.36, 0.24), ORANGE, (90, 0, 0)),
        *_eyes(0.08, 0.45, 0.15, 0.035, WHITE),
        *[Part("ellipsoid", {"radii": (0.08, 0.04, 0.12)}, (sx * 0.12, -0.6, 0.1), ORANGE) for sx in (-1, 1)],
    ], has_front=True, description="black back, white belly and orange beak at the front")
    mushroom = ToyObject("mushroom", ["mushroom", "toadstool"], [
        Part("cylinder", {"radius": 0.12, "half_height": 0.3}, (0, -0.35, 0), (0.95, 0.9, 0.78)),
        Part("ellipsoid", {"radii": (0.55, 0.28, 0.55)}, (0, 0.05, 0), RED),
        *[Part("sphere", {"radius": 0.07}, (0.3 * x, 0.25 + 0.03 * abs(z), 0.3 * z), WHITE)
          for x, z in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))],
    ], description="red cap with white spots on a pale stem")
    table = ToyObject("wooden table", ["wooden table", "table", "desk"], [
        Part("box", {"half": (0.62, 0.04, 0.42)}, (0, 0.2, 0), BROWN),
        *[Part("box", {"half": (0.045, 0.3, 0.045)}, (sx * 0.52, -0.13, sz * 0.32), BROWN)
          for sx in (-1, 1) for sz in (-1, 1)],
    ], description="brown table, four legs")
    traffic_cone = ToyObject("traffic cone", ["traffic cone", "cone", "road cone"], [
        Part("cone", {"half_height": 0.36, "r_bottom": 0.28, "r_top": 0.04}, (0, -0.04, 0), ORANGE),
        Part("cylinder", {"radius": 0.16, "half_height": 0.05}, (0, 0.02, 0), WHITE),
        Part("box", {"half": (0.36, 0.03, 0.36), "rounding": 0.01}, (0, -0.43, 0), ORANGE),
    ], description="orange cone with a white band on a square base")
    tree = ToyObject("pine tree", ["pine tree", "tree", "christmas tree", "fir tree"], [
        Part("cylinder", {"radius": 0.08, "half_height": 0.17}, (0, -0.55, 0), BROWN),
        Part("cone", {"half_height": 0.26, "r_bottom": 0.42, "r_top": 0.0}, (0, -0.13, 0), GREEN),
        Part("cone", {"half_height": 0.22, "r_bottom": 0.3, "r_top": 0.0}, (0, 0.28, 0), GREEN),
    ], description="green cones on a brown trunk")
    mug = ToyObject("coffee mug", ["coffee mug", "mug", "cup", "coffee cup"], [
        Part("cylinder", {"radius": 0.28, "half_height": 0.32}, (-0.08, -0.05, 0), (0.1, 0.55, 0.6)),
        Part("torus", {"major": 0.17, "minor": 0.045}, (0.24, -0.05, 0), (0.1, 0.55, 0.6), (90, 0, 0)),
        Part("cylinder", {"radius": 0.24, "half_height": 0.01}, (-0.08, 0.275, 0), (0.35, 0.2, 0.1)),
    ], description="teal mug, handle on its side, coffee on top")
    donut = ToyObject("donut", ["donut", "doughnut"], [
        Part("torus", {"major": 0.36, "minor": 0.17}, (0, 0, 0), (0.8, 0.55, 0.3)),
        Part("torus", {"major": 0.36, "minor": 0.15}, (0, 0.05, 0), (0.95, 0.45, 0.65)),
    ], description="tan ring with pink icing")
    return [duck, snowman, car, penguin, mushroom, table, traffic_cone, tree, mug, donut]


ARTICLES = re.compile(r"^(a|an|the|one)\s+")
VIEW_SUFFIX = re.compile(r",\s*(front|side|back|overhead)\s+view\s*$")


def normalize_prompt(prompt: str) -> tuple[str, str | None]:
    """Lower-case text without view suffix or leading article, and the view label if present."""
    text = " ".join(prompt.strip().lower().split())
    match = VIEW_SUFFIX.search(text)
    label = match.group(1) if match else None
    if match:
        text = text[: match.start()]
    return ARTICLES.sub("", text.strip()), label
