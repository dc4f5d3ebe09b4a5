"""The mesh stage: DMTet. A deformable tetrahedral grid holds a signed distance and a bounded offset
per vertex; differentiable marching tetrahedra turn them into a triangle mesh every step, which
renderers/mesh.py draws with its colour from a field queried at the surface (the coarse stage's
colour network, carried over). It starts from a finished NeRF or Gaussian run: fitted to the
surface that run's own export writes (geometry/surface_fit.py), so the stage starts where the
coarse asset is, not a lattice's coarser copy of it.
The asset it exports is that mesh itself, not a marching-cubes extraction.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import trimesh
from torch import nn
from tqdm import tqdm

from ..errors import UserError
from ..export.mesh import TexturedMesh, bake_texture, export_surface, extract_mesh, largest_part, unwrap
from ..export.solid import euler_rises, plug_handles, surface_field
from ..geometry.mesh_regularizers import grid_edges, laplacian_smoothness, normal_consistency, sdf_sign_flips
from ..geometry.nerf import NeRFField
from ..geometry.surface_fit import chamfer_fit, lattice_signed_distance, surface_samples
from ..geometry.tetrahedra import deformed, marching_tetrahedra, tet_grid
from ..schedule import evaluate
from ..topology import lattice_euler
from renderers.mesh import check_backend, draw, draw_chunked
from renderers.mesh_nvdiffrast import prepare_nvdiffrast

from .base import FieldRepresentation, Representation, check_one_rgb_particle, check_previous_run, coarse_folder

SDF_CLAMP_CELLS = 3.0  # the initial signed distance is clamped to this many cells: only its zero set matters
TARGET_SAMPLES = 400_000  # samples of the coarse surface: spaced well below a cell at resolution 64
# The fit's Adam steps: a signed distance moves at most 1.6% of a cell per step, an offset 3% of its
# tanh range (on the toy duck, Chamfer to the coarse surface levels off within about 50 of 200 steps).
FIT_LR_SDF_CELLS = 0.016
FIT_LR_OFFSETS = 0.03


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
        check_backend(cfg.renderer, cuda=torch.cuda.is_available())
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
        m = cfg.geometry.mesh
        target, normals = surface_samples(coarse_surface(previous), TARGET_SAMPLES, cfg.seed)
        mesh = cls(cfg, particle, sdf=initial_sdf(target, normals, m.resolution, cfg.geometry.radius))
        mesh.fit_to(target, m.fit_steps, cfg.seed)
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

    def fit_to(self, target: np.ndarray, steps: int, seed: int) -> None:
        """Move the signed distances and offsets so the surface meets the target points (Chamfer),
        before any guidance: lattice interpolation alone puts vertices on chords across cells."""
        if steps == 0:
            return
        bar = tqdm(total=steps, desc="fitting the mesh to the coarse surface", unit="step", leave=False)
        groups = [{"params": [self.sdf], "lr": FIT_LR_SDF_CELLS * self.cell},
                  {"params": [self.offsets], "lr": FIT_LR_OFFSETS}]
        with torch.enable_grad(), bar:
            chamfer_fit(self.surface, groups, target, steps, seed, say=lambda _: bar.update())

    def parameter_groups(self) -> dict:
        return {"sdf": [self.sdf], "offsets": [self.offsets], "encoding": list(self.colour.encoding.parameters()),
                "mlp": list(self.colour.colour_mlp.parameters())}

    def surface(self, cleaned: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(vertices, faces) of the zero level set. Grid points on the boundary always count as
        outside, so the surface is closed even where the solid reaches the grid's edge. `cleaned`:
        with the export's artefact rule applied to the signs (cleaned_sdf)."""
        sdf = torch.where(self.boundary, self.sdf.abs().clamp_min(1e-4), self.sdf)
        if cleaned:
            sdf = self.cleaned_sdf(sdf)
        positions = deformed(self.points, self.offsets, self.res, self.radius)
        return marching_tetrahedra(positions, sdf, self.tets, lattice=self.points)

    @torch.no_grad()
    def cleaned_sdf(self, sdf: torch.Tensor) -> torch.Tensor:
        """The signed distances with their signs cleaned: specks go, cavities fill, and handles
        narrower than HANDLE_FRACTION of the object are plugged, each by the smallest blob that
        removes it (plug_handles). The prior's steps can pierce a thin wall between two lattice
        points (a mesh-stage duck came out with two handles, a toy car with nine); the distances
        elsewhere are kept, so the surface keeps its place."""
        n = self.res + 1
        values = sdf.detach().cpu().double().numpy()

        def handles(solid: np.ndarray) -> int:  # of marching tetrahedra's surface, counted on the signs
            return max(0, 1 - lattice_euler(solid))
        rises = functools.partial(euler_rises, euler=lattice_euler)
        solid = plug_handles((values < 0).reshape(n, n, n), handles, may_lower=rises).reshape(-1)
        solid &= ~self.boundary.cpu().numpy()  # the grid's edge stays outside: the surface stays closed
        return torch.from_numpy(-surface_field(-values, 0.0, solid)).to(sdf)  # surface_field: inside > 0

    def prepare_device(self, device, say=None) -> None:
        if self.cfg.renderer.backend == "nvdiffrast":
            prepare_nvdiffrast(device, say)

    def render(self, background, cams, shading, randomized=False, generator=None, bg_color=None) -> dict:
        vertices, faces = self.surface()
        out = draw(vertices, faces, self.colour.albedo, background, cams, shading, bg_color,
                   backend=self.cfg.renderer.backend)
        out["mesh"] = (vertices, faces)
        return out

    @torch.no_grad()
    def render_chunked(self, background, cams, shading, bg_color=None) -> dict:
        vertices, faces = self.surface()
        return draw_chunked(vertices, faces, self.colour.albedo, background, cams, shading, bg_color,
                            backend=self.cfg.renderer.backend)

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
        vertices, faces = self.surface(cleaned=True)
        if len(faces) == 0:
            raise UserError("the mesh stage's surface is empty (every signed distance is positive); "
                            "resume from an earlier checkpoint or lower the learning rates")
        mesh = largest_part(trimesh.Trimesh(vertices.float().cpu().numpy(), faces.cpu().numpy(), process=True))
        mesh = export_surface(mesh, export_cfg.faces)
        verts, tri, uvs, normals = unwrap(mesh)
        device = self.sdf.device
        texture = bake_texture(verts, tri, uvs, lambda p: self.colour.display_albedo(p.to(device)).float().cpu(),
                               export_cfg.texture_size)
        if not np.isfinite(verts).all():
            raise UserError("the mesh holds non-finite vertices; the run diverged, resume from an earlier checkpoint")
        return TexturedMesh(verts, tri, uvs, texture, normals)


@torch.no_grad()
def coarse_surface(previous: FieldRepresentation) -> trimesh.Trimesh:
    """The surface the previous run's own export writes (before decimation): marching cubes of its
    cleaned solid at its export.resolution and isosurface level."""
    g, e = previous.cfg.geometry, previous.cfg.export
    device = next(previous.parameters()).device
    return extract_mesh(lambda p: previous.density(p.to(device)).float().cpu(), g.radius, e.resolution,
                        g.isosurface_threshold, previous.mesh_smoothing)


def initial_sdf(target: np.ndarray, normals: np.ndarray, resolution: int, radius: float) -> torch.Tensor:
    """Signed distances (negative inside) at the tet grid's lattice points to a surface given by
    samples and their normals, clamped to SDF_CLAMP_CELLS cells (only the zero set matters)."""
    points, _ = tet_grid(resolution, radius)
    band = SDF_CLAMP_CELLS * 2 * radius / resolution
    shape = (resolution + 1,) * 3
    return torch.from_numpy(lattice_signed_distance(target, normals, points.double().numpy(), shape, band)).float()


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
