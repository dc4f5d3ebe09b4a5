"""User objects for the toy world: any mesh file (GLB/OBJ/PLY) becomes a catalogue entry.

A catalogue extension is a YAML file:

    objects:
      - name: my vase            # the prompt "a my vase" / "my vase, side view" selects it
        aliases: [vase]          # optional extra names
        mesh: meshes/vase.glb    # relative to the YAML file
        colour: [0.8, 0.3, 0.2]  # albedo used where the mesh carries no vertex colours
        has_front: false
        up: y                    # the mesh's up axis (y or z); it is turned to +Y up
        front: z                 # the mesh's front axis (default z, or -y when up is z); turned to +Z

The mesh is centred and scaled to fit the toy world's radius, then turned into a signed distance
grid (unsigned distance from dense surface samples, sign from their face normals), cached by
the file's hash. Sphere tracing and the exact prior then treat it like any built-in object.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..atomic import cache_dir, write_with
from .. import yamldata
from ..errors import UserError
from ..yamldata import clip
from .objects import ToyObject, normalize_prompt

FIT_RADIUS = 0.75
GRID = 64


class MeshObject(ToyObject):
    """A toy object backed by a signed distance grid and a per-cell albedo grid."""

    def __init__(self, name, aliases, sdf_grid, albedo_grid, has_front, digest, description=""):
        super().__init__(name, aliases, [], has_front, description)
        self.sdf_grid = sdf_grid  # (G, G, G) over [-1, 1]^3
        self.albedo_grid = albedo_grid  # (3, G, G, G)
        self.digest = digest

    def _sample(self, grid, points):
        g = points[None, None, None].to(grid.dtype)[..., [2, 1, 0]]  # grid_sample wants (x=W, y=H, z=D)
        return torch.nn.functional.grid_sample(grid[None], g, align_corners=True, padding_mode="border")[0, :, 0, 0]

    def distance(self, points):
        d = self._sample(self.sdf_grid[None], points.clamp(-1, 1))[0]
        outside = (points.abs() - 1).clamp_min(0).norm(dim=-1)  # beyond the grid: keep stepping
        return d + outside

    def query(self, points):
        return self.distance(points), self._sample(self.albedo_grid, points.clamp(-1, 1)).T

    def fingerprint(self) -> str:
        return self.digest


AXES = {"x": 0, "y": 1, "z": 2}


def _orient(vertices: np.ndarray, up: str, front: str) -> np.ndarray:
    """Rotate so the given up axis becomes +Y and the given front axis becomes +Z."""
    def axis(spec):
        sign = -1.0 if spec.startswith("-") else 1.0
        v = np.zeros(3)
        v[AXES[spec.lstrip("-+")]] = sign
        return v
    y, z = axis(up), axis(front)
    if abs(np.dot(y, z)) > 0.5:
        raise UserError(f"mesh up axis '{up}' and front axis '{front}' must differ")
    x = np.cross(y, z)
    return vertices @ np.stack([x, y, z], 1)


def _signed_distance_grid(mesh, colour):
    import scipy.spatial
    import trimesh
    axis = np.linspace(-1, 1, GRID)
    pts = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    samples, face_idx = trimesh.sample.sample_surface_even(mesh, 60000, seed=0)
    tree = scipy.spatial.cKDTree(samples)
    dist, nearest = tree.query(pts)
    # Sign: near the surface, the side of the nearest sample's face normal (exact at the
    # surface); far from it, a filled voxelization (robust where normals disagree).
    normal_side = ((pts - samples[nearest]) * mesh.face_normals[face_idx[nearest]]).sum(-1) < 0
    vox = mesh.voxelized(2.0 / (GRID - 1)).fill()
    inside = np.where(dist < 3 * 2.0 / (GRID - 1), normal_side, vox.is_filled(pts))
    sdf = np.where(inside, -dist, dist).reshape(GRID, GRID, GRID)
    rgb = np.broadcast_to(np.asarray(colour, np.float32), (len(pts), 3)).copy()
    vc = getattr(mesh.visual, "vertex_colors", None)
    if getattr(mesh.visual, "kind", None) == "vertex" and vc is not None and len(vc) == len(mesh.vertices):
        face_rgb = vc[mesh.faces[face_idx]].mean(1)[:, :3] / 255.0
        rgb = face_rgb[nearest].astype(np.float32)
    albedo = rgb.reshape(GRID, GRID, GRID, 3).transpose(3, 0, 1, 2)
    return torch.from_numpy(sdf.astype(np.float32)), torch.from_numpy(np.ascontiguousarray(albedo))


def _check_entry(entry) -> None:
    if not isinstance(entry, dict):
        raise UserError(f"catalogue entry {clip(repr(entry))} must be a mapping with a name and a mesh file")
    for key in ("name", "mesh"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise UserError(f"catalogue entry {clip(repr(entry))} lacks '{key}'; each object needs a name and a mesh file")
    colour = entry.get("colour", [0.75, 0.75, 0.75])
    if not (isinstance(colour, list) and len(colour) == 3
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c <= 1 for c in colour)):
        raise UserError(f"catalogue entry '{clip(entry['name'])}': colour must be three numbers in [0, 1], "
                        f"got {clip(repr(colour))}")
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise UserError(f"catalogue entry '{clip(entry['name'])}': aliases must be a list of names")
    for key in ("up", "front"):
        if key in entry and str(entry[key]).lstrip("+-") not in AXES:
            raise UserError(f"catalogue entry '{clip(entry['name'])}': {key} must be x, y or z (with an optional "
                            f"- sign), got {clip(repr(entry[key]))}")


def _read_cached(cached: Path):
    """(sdf, albedo) from the cache, or None when the entry is missing or damaged (then rebuilt)."""
    if not cached.is_file():
        return None
    try:
        data = torch.load(cached, weights_only=True)
        sdf, albedo = data["sdf"], data["albedo"]
    except Exception:  # noqa: BLE001 - a truncated or foreign file is a cache miss
        return None
    if tuple(sdf.shape) != (GRID,) * 3 or tuple(albedo.shape) != (3,) + (GRID,) * 3:
        return None
    return sdf, albedo


def _fitted_mesh(path: Path, up: str, front: str):
    """The mesh file, turned +Y up and +Z front, centred and scaled to the toy world."""
    import trimesh
    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise UserError(f"cannot read mesh {path} ({type(exc).__name__}); use a GLB, OBJ or PLY file") from None
    if len(getattr(mesh, "faces", [])) == 0:
        raise UserError(f"mesh {path} has no faces; use a triangle mesh")
    verts = _orient(np.asarray(mesh.vertices, np.float64), up, front)
    center = (verts.max(0) + verts.min(0)) / 2
    extent = np.linalg.norm(verts - center, axis=1).max() if np.isfinite(verts).all() else 0.0
    if not extent > 1e-9 or not mesh.area > 1e-12:
        raise UserError(f"mesh {path} is degenerate (no area, or non-finite vertices); use a mesh with a real surface")
    verts = (verts - center) * (FIT_RADIUS / extent)
    return trimesh.Trimesh(verts, mesh.faces, visual=mesh.visual, process=False)


def load_mesh_object(entry: dict, base: Path) -> MeshObject:
    _check_entry(entry)
    path = (base / entry["mesh"]).resolve()
    if not path.is_file():
        raise UserError(f"mesh file {clip(path)} for '{clip(entry['name'])}' does not exist; fix its path in the "
                        f"catalogue YAML")
    colour = entry.get("colour", [0.75, 0.75, 0.75])
    up = str(entry.get("up", "y"))
    front = str(entry.get("front", "z" if up.lstrip("+-") != "z" else "-y"))  # z-up tools face -y
    digest = hashlib.sha1(path.read_bytes() + repr((colour, up, front, GRID, FIT_RADIUS)).encode()).hexdigest()[:12]
    cached = cache_dir() / "toy-meshes" / f"{digest}.pt"
    grids = _read_cached(cached)
    if grids is None:
        grids = _signed_distance_grid(_fitted_mesh(path, up, front), colour)
        write_with(cached, lambda p: torch.save({"sdf": grids[0], "albedo": grids[1]}, p))
    aliases = [entry["name"].lower()] + [str(a).lower() for a in entry.get("aliases", [])]
    return MeshObject(entry["name"].lower(), aliases, *grids, bool(entry.get("has_front", False)), digest)


def load_catalogue_extension(path) -> list[MeshObject]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"catalogue file {path} does not exist; pass a YAML file with an 'objects:' list")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise UserError(f"cannot read catalogue file {path}; pass a UTF-8 YAML file") from None
    data = yamldata.loads(text, f"catalogue file {path}")
    entries = (data or {}).get("objects") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"catalogue file {path} needs a non-empty 'objects:' list")
    return [load_mesh_object(e, path.parent) for e in entries]


def single_object_catalogue(mesh: str, prompt: str) -> Path:
    """A catalogue YAML holding one object: `mesh`, named by the prompt (`dreamer generate
    "a ceramic vase" --object vase.glb`). It lives in the cache, keyed by both, so run folders that
    point at it keep working."""
    path = Path(mesh).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"--object {mesh} does not exist; pass a GLB, OBJ or PLY file")
    name, _ = normalize_prompt(prompt)
    if not name:
        raise UserError('--object needs a prompt that names the object, e.g. dreamer generate "a ceramic vase" --object vase.glb')
    entry = {"objects": [{"name": name, "mesh": str(path)}]}
    text = yamldata.dumps(entry)
    out = cache_dir() / "objects" / f"{hashlib.sha1(text.encode()).hexdigest()[:12]}.yaml"
    if not out.is_file():
        write_with(out, lambda tmp: tmp.write_text(text))
    return out
