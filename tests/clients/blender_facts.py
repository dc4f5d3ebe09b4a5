"""What Blender sees in an exported asset. Run by Blender's Python (bpy from PyPI, its own venv:
`make tools`), not by ours: `python blender_facts.py MODEL [RENDER.png]` prints one JSON object.

Blender is Z-up: its glTF and OBJ importers turn our +Y up into +Z up, so height is along z.
"""
import json
import sys

import bpy  # first: it puts Blender's own modules (bmesh) on the path

import bmesh  # noqa: I001


def import_model(path: str):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if path.endswith(".glb"):
        bpy.ops.import_scene.gltf(filepath=path)
    else:
        bpy.ops.wm.obj_import(filepath=path)
    return [o for o in bpy.context.scene.objects if o.type == "MESH"]


def material_facts(obj) -> dict:
    mats = [m for m in obj.data.materials if m is not None]
    facts = {"materials": len(mats), "base_colour_texture": False, "texture_packed": False, "texture_size": None}
    if not mats or not mats[0].use_nodes:
        return facts
    bsdf = next((n for n in mats[0].node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    links = bsdf.inputs["Base Color"].links if bsdf else []
    if links and links[0].from_node.type == "TEX_IMAGE" and links[0].from_node.image:
        image = links[0].from_node.image
        facts.update(base_colour_texture=True, texture_packed=image.packed_file is not None,
                     texture_size=list(image.size))
    if bsdf:
        facts["metallic"] = bsdf.inputs["Metallic"].default_value
        facts["roughness"] = bsdf.inputs["Roughness"].default_value
    return facts


def merged_topology(obj) -> dict:
    """Blender's "merge by distance", then pieces, open edges and non-manifold edges."""
    bm = bmesh.new()
    bm.from_mesh(obj.data)
    bmesh.ops.remove_doubles(bm, verts=bm.verts, dist=1e-5)
    bm.faces.ensure_lookup_table()
    seen, pieces = set(), 0
    for start in bm.faces:
        if start.index in seen:
            continue
        pieces += 1
        stack = [start]
        seen.add(start.index)
        while stack:
            face = stack.pop()
            for edge in face.edges:
                for other in edge.link_faces:
                    if other.index not in seen:
                        seen.add(other.index)
                        stack.append(other)
    facts = {"pieces": pieces, "open_edges": sum(e.is_boundary for e in bm.edges),
             "non_manifold_edges": sum(not e.is_manifold for e in bm.edges),
             "euler": len(bm.verts) - len(bm.edges) + len(bm.faces)}
    bm.free()
    return facts


def render(obj, path: str) -> None:
    """A three-quarter view with a sun and the Workbench engine (textures, no GPU needed)."""
    scene = bpy.context.scene
    height = max((obj.matrix_world @ v.co).z for v in obj.data.vertices)
    bpy.ops.object.camera_add(location=(1.9 * height, -2.4 * height, 1.2 * height))
    camera = bpy.context.object
    target = bpy.data.objects.new("target", None)
    target.location = (0, 0, height / 2)
    scene.collection.objects.link(target)
    track = camera.constraints.new("TRACK_TO")
    track.target, track.track_axis, track.up_axis = target, "TRACK_NEGATIVE_Z", "UP_Y"
    scene.camera = camera
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "TEXTURE"
    scene.render.resolution_x = scene.render.resolution_y = 512
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)


def main(path: str, render_to: str | None) -> dict:
    meshes = import_model(path)
    facts = {"objects": len(meshes)}
    if len(meshes) != 1:
        return facts
    obj = meshes[0]
    bpy.context.view_layer.update()
    world = [obj.matrix_world @ v.co for v in obj.data.vertices]  # the OBJ importer rotates the object
    extent = [max(p[i] for p in world) - min(p[i] for p in world) for i in range(3)]
    polys = obj.data.polygons
    facts.update(faces=len(polys), smooth_faces=sum(p.use_smooth for p in polys), world_size=extent,
                 min_z=min(p.z for p in world), max_z=max(p.z for p in world),
                 custom_normals=bool(obj.data.has_custom_normals), **material_facts(obj), **merged_topology(obj))
    if render_to:
        render(obj, render_to)
    return facts


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    print("BLENDER_FACTS " + json.dumps(main(args[0], args[1] if len(args) > 1 else None)))
