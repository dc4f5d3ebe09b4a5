"""Writers for GLB (glTF 2.0 PBR) and OBJ+MTL+PNG, each file moved into place atomically. Both
carry the mesh's own vertex normals, so the asset shades the same (smooth) in every format."""
from __future__ import annotations

from pathlib import Path

import trimesh
from PIL import Image

from ..atomic import write_bytes, write_text
from .mesh import TexturedMesh


ROUGHNESS = 0.8  # a matte, non-metallic default: the baked albedo has no gloss information to say otherwise


def _trimesh(tm: TexturedMesh, material) -> trimesh.Trimesh:
    visual = trimesh.visual.TextureVisuals(uv=tm.uvs, material=material)
    return trimesh.Trimesh(tm.vertices, tm.faces, vertex_normals=tm.normals, visual=visual, process=False)


def write_glb(tm: TexturedMesh, path: Path) -> Path:
    """Binary glTF: +Y up, front facing +Z, metres; a non-metallic PBR material with the texture.

    Built explicitly as PBRMaterial: trimesh's default SimpleMaterial exports without
    metallicFactor, which glTF reads as fully metallic (a dark, mirror-like asset). Single-sided on
    purpose: the mesh is closed, so back faces are never seen and engines may cull them.
    """
    material = trimesh.visual.material.PBRMaterial(
        name="dreamer", baseColorTexture=Image.fromarray(tm.texture), metallicFactor=0.0,
        roughnessFactor=ROUGHNESS, doubleSided=False)
    data = trimesh.exchange.gltf.export_glb(_trimesh(tm, material).scene(), include_normals=True)
    write_bytes(path, data)
    return path


def write_obj(tm: TexturedMesh, path: Path) -> list[Path]:
    """model.obj + model.mtl + model.png next to each other."""
    path = Path(path)
    material = trimesh.visual.material.SimpleMaterial(
        name="dreamer", image=Image.fromarray(tm.texture), diffuse=[255, 255, 255, 255],
        ambient=[255, 255, 255, 255], specular=[0, 0, 0, 255])
    text, files = trimesh.exchange.obj.export_obj(
        _trimesh(tm, material), include_normals=True, return_texture=True, mtl_name=f"{path.stem}.mtl")
    written = []
    for name, data in files.items():  # the .mtl and the texture image trimesh names for us
        target = path.parent / name
        if name.endswith(".mtl"):
            data = _rename_texture(data, files, path.stem)
        elif name.lower().endswith((".png", ".jpg", ".jpeg")):
            target = path.parent / f"{path.stem}.png"
        write_bytes(target, data)
        written.append(target)
    write_text(path, text)
    return [path] + written


def _rename_texture(mtl: bytes, files: dict, stem: str) -> bytes:
    text = mtl.decode()
    for name in files:
        if name.lower().endswith((".png", ".jpg", ".jpeg")):
            text = text.replace(name, f"{stem}.png")
    return text.encode()


