"""The exports opened by the programs users open them with: Blender (its own importers) and three.js
(GLTFLoader, as a web page or a game built on it would). The asset is the toy duck's true shape
through the whole export path, at the demo's export size, 1.5 m tall."""
import numpy as np
import pytest
import torch

from conftest import ARTIFACTS, blender_facts, three_facts
from dreamer.export.mesh import textured_mesh_from_field
from dreamer.export.placement import placement
from dreamer.export.writers import write_glb, write_obj
from dreamer.toy.objects import builtin_objects

HEIGHT = 1.5


@pytest.fixture(scope="module")
def duck_files(tmp_path_factory):
    duck = builtin_objects()[0]
    tm = textured_mesh_from_field(lambda p: 30 * torch.sigmoid(-duck.query(p)[0] / 0.02), lambda p: duck.query(p)[1],
                                  1.0, 128, "auto", 20000, 512)
    where = placement(tm.vertices, HEIGHT, "base")
    tm = tm.transformed(where.scale, where.offset)
    folder = tmp_path_factory.mktemp("duck")
    write_obj(tm, folder / "model.obj")
    return write_glb(tm, folder / "model.glb"), folder / "model.obj", tm


def test_three_js_loads_a_textured_standard_material_with_normals(duck_files):
    glb, _, tm = duck_files
    (mesh,) = three_facts(glb)["meshes"]
    assert mesh["attributes"] == ["normal", "position", "uv"] and mesh["vertices"] == len(tm.vertices)
    assert mesh["material"] == "MeshStandardMaterial" and mesh["flatShading"] is False
    assert mesh["metalness"] == 0 and mesh["side"] == "front"
    assert mesh["map"] == {"width": 512, "height": 512, "png": True, "colorSpace": "srgb"}
    assert mesh["min"][1] == pytest.approx(0, abs=1e-6) and mesh["max"][1] == pytest.approx(HEIGHT, rel=1e-6)


@pytest.mark.parametrize("fmt", ["glb", "obj"])
def test_blender_imports_one_smooth_closed_textured_object_of_the_asked_height(duck_files, fmt):
    glb, obj, tm = duck_files
    render = ARTIFACTS / "blender-duck.png" if fmt == "glb" else None
    if render:
        ARTIFACTS.mkdir(exist_ok=True)
    facts = blender_facts(glb if fmt == "glb" else obj, render)
    assert facts["objects"] == 1 and facts["faces"] == len(tm.faces)
    assert facts["smooth_faces"] == facts["faces"] and facts["custom_normals"]  # shaded from the file's normals
    assert facts["max_z"] - facts["min_z"] == pytest.approx(HEIGHT, rel=0.01)  # Blender is Z-up
    assert facts["min_z"] == pytest.approx(0, abs=1e-4)  # pivot base: it stands on the ground
    assert facts["materials"] == 1 and facts["base_colour_texture"] and facts["texture_size"] == [512, 512]
    assert facts["metallic"] == 0
    if fmt == "glb":
        assert facts["texture_packed"]  # the GLB carries its texture
    # Blender's "merge by distance": one closed manifold piece, a sphere's Euler characteristic
    assert (facts["pieces"], facts["open_edges"], facts["non_manifold_edges"], facts["euler"]) == (1, 0, 0, 2)
    if render:
        image = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(render).convert("RGB"), np.float32)
        assert (np.abs(image - image[0, 0]).sum(-1) > 30).mean() > 0.05  # the duck is in the picture
