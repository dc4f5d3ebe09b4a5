"""The mesh stage: DMTet. A deformable tetrahedral grid holds a signed distance and a bounded offset
per vertex; differentiable marching tetrahedra turn them into a triangle mesh every step, which
renderers/mesh.py draws with its colour from a field queried at the surface (the coarse stage's
colour network, carried over). It starts from a finished NeRF or Gaussian run: the signed
distance from that field's cleaned solid at its isosurface level, as the export would cut it.
The asset it exports is that mesh itself, not a marching-cubes extraction.
"""
from __future__ import annotations

import numpy as np
import torch
import trimesh
from scipy import ndimage
from torch import nn

from ..errors import UserError
from ..export.mesh import TexturedMesh, auto_threshold, bake_texture, decimate, density_grid, largest_part, unwrap
from ..export.solid import clean_solid, surface_field
from ..geometry.mesh_regularizers import grid_edges, laplacian_smoothness, normal_consistency, sdf_sign_flips
from ..geometry.nerf import NeRFField
from ..geometry.tetrahedra import deformed, marching_tetrahedra, tet_grid
from ..schedule import evaluate
from renderers.mesh import draw, draw_chunked

from .base import FieldRepresentation, Representation, check_one_rgb_particle, check_previous_run, coarse_folder

SDF_CLAMP_CELLS = 3.0  # the initial signed distance is clamped to this many cells: only its zero set matters


class Mesh(Representation):
    name = "mesh"

    def __init__(self, cfg, particle: int = 0, sdf: torch.Tensor | None = None):
        super().__init__(cfg, particle)
        g, m = cfg.geometry, cfg.geometry.mesh
        self.res, self.radius = m.resolution, g.radius
        self.cell = 2 * g.radius / m.resolution
        points, tets = tet_grid(m.resolution, g.radius)
        # The grid is rebuilt from the config, so it is not part of the checkpoint.
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("tets", tets, persistent=False)
        self.register_buffer("edges", grid_edges(tets), persistent=False)
        self.register_buffer("boundary", (points.abs() >= g.radius - 1e-6).any(-1), persistent=False)
        if sdf is None:  # a sphere of half the radius: init=sphere, or the skeleton a checkpoint fills
            sdf = points.norm(dim=-1) - 0.5 * g.radius
        self.sdf = nn.Parameter(sdf.float())
        self.offsets = nn.Parameter(torch.zeros_like(points))
        # The colour: a hash-grid field's albedo at surface points (a NeRF's encoding and colour
        # network, carried over; the surface replaces its density network).
        self.colour = NeRFField(g)
        self.colour.density_mlp = None
        self.color_channels = 3

    # -- the contract -----------------------------------------------------------------------------

    @classmethod
    def validate(cls, cfg) -> None:
        m = cfg.geometry.mesh
        check_one_rgb_particle(cfg, "mesh")
        if m.init == "run":
            check_previous_run("mesh", m.init_path, "NeRF or Gaussian")

    @classmethod
    def previous_run(cls, cfg) -> str | None:
        m = cfg.geometry.mesh
        if m.init == "run":
            return m.init_path
        if m.init == "sphere":
            return None
        return coarse_folder("mesh", cfg)

    @classmethod
    def create_from(cls, cfg, previous: Representation, particle: int = 0) -> "Mesh":
        if not isinstance(previous, FieldRepresentation) or previous.color_channels != 3:
            raise UserError(f"the mesh stage starts from a NeRF or Gaussian run with RGB colours, not a "
                            f"{previous.name} run with {previous.color_channels} colour channels")
        mesh = cls(cfg, particle, sdf=initial_sdf(previous, cfg.geometry.mesh.resolution))
        if previous.name == "nerf":
            state = {k: v for k, v in previous.field.state_dict().items() if not k.startswith("density_mlp.")}
            try:
                mesh.colour.load_state_dict(state)
            except RuntimeError:
                raise UserError("the mesh stage's colour field must have the NeRF run's shape: give it the same "
                                "geometry.pos_encoding, mlp_width and mlp_layers (dreamer refine does)") from None
        else:
            fit_colour(mesh, previous, cfg.geometry.mesh.colour_fit_steps, seed=cfg.seed)
        return mesh

    def parameter_groups(self) -> dict:
        return {"sdf": [self.sdf], "offsets": [self.offsets], "encoding": list(self.colour.encoding.parameters()),
                "mlp": list(self.colour.colour_mlp.parameters())}

    def surface(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(vertices, faces) of the zero level set. Grid points on the boundary always count as
        outside, so the surface is closed even where the solid reaches the grid's edge."""
        sdf = torch.where(self.boundary, self.sdf.abs().clamp_min(1e-4), self.sdf)
        positions = deformed(self.points, self.offsets, self.res, self.radius)
        return marching_tetrahedra(positions, sdf, self.tets)

    def render(self, background, cams, shading, randomized=False, generator=None, bg_color=None) -> dict:
        vertices, faces = self.surface()
        out = draw(vertices, faces, self.colour.albedo, background, cams, shading, bg_color)
        out["mesh"] = (vertices, faces)
        return out

    @torch.no_grad()
    def render_chunked(self, background, cams, shading, bg_color=None) -> dict:
        vertices, faces = self.surface()
        return draw_chunked(vertices, faces, self.colour.albedo, background, cams, shading, bg_color)

    def regularizers(self, out, step) -> torch.Tensor:
        c, total = self.cfg.loss, torch.zeros((), device=self.sdf.device)
        vertices, faces = out["mesh"]
        lam = evaluate(c.lambda_normal_consistency, step)
        if lam:
            total = total + lam * normal_consistency(vertices, faces)
        lam = evaluate(c.lambda_laplacian, step)
        if lam:
            total = total + lam * laplacian_smoothness(vertices, faces) / self.cell
        lam = evaluate(c.lambda_sdf_sign, step)
        if lam:
            total = total + lam * sdf_sign_flips(self.sdf, self.edges, self.cell)
        return total

    @torch.no_grad()
    def to_mesh(self, export_cfg) -> TexturedMesh:
        """The optimized surface itself: its largest closed piece (specks the prior left go), decimated
        to export.faces when above it, UV-unwrapped, with the colour field baked into the texture."""
        vertices, faces = self.surface()
        if len(faces) == 0:
            raise UserError("the mesh stage's surface is empty (every signed distance is positive); "
                            "resume from an earlier checkpoint or lower the learning rates")
        mesh = largest_part(trimesh.Trimesh(vertices.float().cpu().numpy(), faces.cpu().numpy(), process=True))
        mesh = decimate(mesh, export_cfg.faces)
        verts, tri, uvs, normals = unwrap(mesh)
        device = self.sdf.device
        texture = bake_texture(verts, tri, uvs, lambda p: self.colour.display_albedo(p.to(device)).float().cpu(),
                               export_cfg.texture_size)
        if not np.isfinite(verts).all():
            raise UserError("the mesh holds non-finite vertices; the run diverged, resume from an earlier checkpoint")
        return TexturedMesh(verts, tri, uvs, texture, normals)


@torch.no_grad()
def initial_sdf(previous: FieldRepresentation, resolution: int) -> torch.Tensor:
    """Signed distances (negative inside) at the tet grid's lattice points, from a field's density:
    its cleaned solid at the previous run's isosurface level (as its export cuts it), with the
    field's own values placing the surface between lattice points, scaled to world units by the
    median density slope across the surface and clamped to SDF_CLAMP_CELLS cells."""
    g = previous.cfg.geometry
    r, n = g.radius, resolution + 1
    cell = 2 * r / resolution
    device = next(previous.parameters()).device
    grid = density_grid(lambda p: previous.density(p.to(device)).float().cpu(), r, n)
    if previous.mesh_smoothing > 0:  # the blur the export gives this field, in the export's voxels (of 128)
        grid = ndimage.gaussian_filter(grid, previous.mesh_smoothing * n / 128, mode="constant")
    level = g.isosurface_threshold
    level = auto_threshold(grid, cell) if level == "auto" else float(level)
    if grid.max() <= level:
        raise UserError(f"the previous run's field never exceeds its isosurface level {level:.3g}; train it longer")
    inside = surface_field(grid, level, clean_solid(grid > level))  # > 0 inside
    slopes = [np.abs(np.diff(inside, axis=a))[(np.diff(inside > 0, axis=a))] for a in range(3)]
    slope = float(np.median(np.concatenate(slopes))) / cell if sum(len(s) for s in slopes) else 1.0
    sdf = torch.from_numpy(-inside / max(slope, 1e-12)).float().reshape(-1)
    return sdf.clamp(-SDF_CLAMP_CELLS * cell, SDF_CLAMP_CELLS * cell)


def fit_colour(mesh: Mesh, previous: FieldRepresentation, steps: int, seed: int, batch: int = 8192) -> None:
    """Fit the mesh's colour field to a field without a colour network of the same shape (Gaussians):
    least squares on its colours at points within two cells of the initial surface."""
    near = mesh.points[mesh.sdf.detach().abs() < 2 * mesh.cell]
    if steps == 0 or len(near) == 0:
        return
    device = next(previous.parameters()).device
    g = torch.Generator().manual_seed(seed)
    groups = mesh.parameter_groups()
    params = groups["encoding"] + groups["mlp"]
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(steps):
        pick = near[torch.randint(len(near), (batch,), generator=g)]
        pts = pick + (torch.rand(batch, 3, generator=g) - 0.5) * mesh.cell
        with torch.no_grad():
            target = previous.display_albedo(pts.to(device)).float().cpu().clamp(0, 1)
        loss = ((mesh.colour.albedo(pts) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
