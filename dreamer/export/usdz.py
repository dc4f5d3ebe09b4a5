"""USDZ for AR (Apple Quick Look, RealityKit): the textured mesh with a UsdPreviewSurface material,
written with Pixar's usd-core and packaged with its zip writer (the layer and the texture).

usd-core is an optional dependency (about 160 MB): `pip install usd-core`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import write_bytes
from ..errors import UserError
from .mesh import TexturedMesh
from .writers import ROUGHNESS

MISSING = "USDZ export needs usd-core, which is not installed; run `pip install usd-core` or drop usdz from the formats"


def usd_available() -> bool:
    try:
        import pxr  # noqa: F401
    except ImportError:
        return False
    return True


def write_usdz(tm: TexturedMesh, path: Path) -> Path:
    """model.usdz: +Y up, metres (both set explicitly), the texture as the base colour."""
    try:
        from pxr import Sdf, Usd
    except ImportError:
        raise UserError(MISSING) from None
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / f"{path.stem}.usdc"
        Image.fromarray(tm.texture).save(Path(tmp) / "texture.png")
        stage = Usd.Stage.CreateNew(str(layer))
        _fill_stage(stage, tm, "texture.png")
        stage.GetRootLayer().Save()
        # The package is written by USD's own zip writer (stored, 64-byte aligned, as usdz needs); the
        # texture sits beside the layer, so its relative path resolves inside the package.
        package = Path(tmp) / path.name
        writer = Sdf.ZipFileWriter.CreateNew(str(package))
        writer.AddFile(str(layer), layer.name)
        writer.AddFile(str(Path(tmp) / "texture.png"), "texture.png")
        writer.Save()
        write_bytes(path, package.read_bytes())
    return path


def _fill_stage(stage, tm: TexturedMesh, texture: str) -> None:
    from pxr import Gf, Kind, Sdf, UsdGeom, UsdShade, Vt

    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/Asset")
    stage.SetDefaultPrim(root.GetPrim())
    root.GetPrim().SetMetadata("kind", Kind.Tokens.component)

    mesh = UsdGeom.Mesh.Define(stage, "/Asset/Mesh")
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)  # a triangle mesh, not a subdivision cage
    mesh.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)  # counter-clockwise seen from outside
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(tm.vertices, np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(tm.faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(tm.faces.ravel(), np.int32)))
    mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(tm.normals, np.float32)))
    mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    lo, hi = tm.vertices.min(0), tm.vertices.max(0)
    mesh.CreateExtentAttr([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))])
    st = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
    st.Set(Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(tm.uvs, np.float32)))

    material = UsdShade.Material.Define(stage, "/Asset/Material")
    surface = UsdShade.Shader.Define(stage, "/Asset/Material/Surface")
    surface.CreateIdAttr("UsdPreviewSurface")
    surface.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.0)
    surface.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(ROUGHNESS)
    reader = UsdShade.Shader.Define(stage, "/Asset/Material/UV")
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st")
    image = UsdShade.Shader.Define(stage, "/Asset/Material/Texture")
    image.CreateIdAttr("UsdUVTexture")
    image.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(texture)
    image.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
    image.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
    image.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
    surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(image.ConnectableAPI(), "rgb")
    material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
    UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material)
