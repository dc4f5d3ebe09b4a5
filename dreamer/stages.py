"""Chained stages: a coarse NeRF or Gaussian run, then the mesh stage started from it, then the
texture stage started from any run with a mesh.

Layout: a run folder is its last stage. `dreamer generate --representation mesh` makes one run
folder for the mesh stage and trains its coarse stage first, as a complete run folder of its own
inside it (RUN/coarse/: config, checkpoints, metrics, its marching-cubes model.glb). One folder per
job keeps batches, the benchmark and the web UI seeing one run; the coarse stage stays inspectable
and re-exportable. `dreamer refine OLD_RUN` instead makes a new folder whose mesh stage starts from
OLD_RUN (geometry.mesh.init=run), leaving the old run as it was; `dreamer texture OLD_RUN` likewise
makes a texture stage of OLD_RUN's exported mesh (geometry.texture.init_path).
"""
from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path

from .config import ExperimentConfig, MeshConfig, build_config, to_dict
from .errors import UserError
from .recipes import method_recipe, recipe_path
from .representations.base import COARSE_FOLDER
from .runs import RunDir, run_progress


def _previous(cfg: ExperimentConfig):
    """The settings naming this run's previous stage (geometry.mesh or geometry.texture), or None."""
    g = cfg.geometry
    if g.type == "mesh" and g.mesh.init == "coarse":
        return g.mesh
    if g.type == "texture" and g.texture.init == "coarse":
        return g.texture
    return None


def has_coarse_stage(cfg: ExperimentConfig) -> bool:
    return _previous(cfg) is not None


def chain(cfg: ExperimentConfig) -> list[ExperimentConfig]:
    """A run's stages, first to last (the last is `cfg`): e.g. NeRF, mesh, texture."""
    configs = [cfg]
    while has_coarse_stage(configs[0]):
        configs.insert(0, coarse_config(configs[0]))
    return configs


def stage_labels(cfg: ExperimentConfig) -> list[str | None]:
    """What progress shows while each stage of the chain trains ([None] for a run of one stage)."""
    types = [c.geometry.type for c in chain(cfg)]
    if len(types) == 1:
        return [None]
    return [f"stage {k}/{len(types)} {t}" for k, t in enumerate(types, 1)]


def coarse_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The previous stage's config: its recipe (coarse_recipe, or the method's recipe for `coarse`, of
    geometry.mesh or geometry.texture), with this run's prompt, seed, threads and prior, and only a
    GLB export. A previous stage that is a mesh stage has its own coarse stage (and its colour shape)."""
    m = _previous(cfg)
    recipe = recipe_path(m.coarse_recipe or method_recipe(cfg.guidance.method, cfg.prior.name, m.coarse))
    whole = to_dict(cfg)
    values = {"prompt": cfg.prompt, "seed": cfg.seed, "threads": cfg.threads, "prior": whole["prior"],
              "guidance": {"method": cfg.guidance.method}, "geometry": {"type": m.coarse},
              "export": {"formats": ["glb"], "turntable": False}}
    if m.coarse_steps is not None:
        values["trainer"] = {"max_steps": m.coarse_steps}
    coarse = build_config(recipe, None, values)
    if cfg.out_dir:
        coarse.out_dir = str(Path(cfg.out_dir) / COARSE_FOLDER)
    carry_mesh_settings(cfg, coarse)
    if has_coarse_stage(coarse):
        carry_colour_shape(coarse, coarse_config(coarse))
    return coarse


def carry_mesh_settings(cfg: ExperimentConfig, previous: ExperimentConfig) -> None:
    """A texture run whose previous stage is a mesh stage passes its own geometry.mesh settings on
    to that stage, those that differ from the defaults (no texture recipe sets them, so the user
    did): `geometry.mesh.coarse_steps=40` then sets the steps of the first of three stages."""
    if cfg.geometry.type != "texture" or previous.geometry.type != "mesh":
        return
    default = MeshConfig()
    for f in fields(MeshConfig):
        value = getattr(cfg.geometry.mesh, f.name)
        if f.name not in ("init", "init_path") and value != getattr(default, f.name):
            setattr(previous.geometry.mesh, f.name, value)  # numbers, names or None


def carry_colour_shape(cfg: ExperimentConfig, coarse: ExperimentConfig) -> None:
    """The mesh stage carries a NeRF's colour network over as it is, so its colour field takes the
    NeRF's shape (and the field's radius); recorded in the mesh run's config.yaml."""
    if cfg.geometry.type != "mesh" or coarse.geometry.type != "nerf":
        return
    g, c = cfg.geometry, coarse.geometry
    g.pos_encoding = copy.deepcopy(c.pos_encoding)
    g.mlp_width, g.mlp_layers, g.radius = c.mlp_width, c.mlp_layers, c.radius
    g.density_activation, g.density_bias = c.density_activation, c.density_bias
    g.density_blob_scale, g.density_blob_std = c.density_blob_scale, c.density_blob_std


# stage -> the runs it starts from, and their names in its error message
STARTS_FROM = {"mesh": ("nerf", "gaussians"), "texture": ("nerf", "gaussians", "mesh")}
NAMES = {"mesh": "NeRF or Gaussian", "texture": "NeRF, Gaussian or mesh"}


def next_stage_config(run_path: str, stage: str, method: str | None, steps: int | None,
                      overrides: list[str]) -> tuple[ExperimentConfig, Path]:
    """`dreamer refine RUN_DIR` (stage "mesh") and `dreamer texture RUN_DIR` (stage "texture"): the
    next stage of a finished run, with that run's prompt, seed and prior, and the stage's recipe for
    the run's method (or --method)."""
    previous = RunDir.open(run_path)
    prev = previous.config()
    if prev.geometry.type not in STARTS_FROM[stage]:
        command = "refine" if stage == "mesh" else "texture"
        raise UserError(f"{run_path} is a {prev.geometry.type} run; dreamer {command} takes a "
                        f"{NAMES[stage]} run")
    if run_progress(previous.path).get("status") != "done":
        raise UserError(f"{run_path} has not finished; run `dreamer resume {run_path}` first")
    if steps is not None and steps < 1:
        raise UserError(f"steps must be a positive integer, got {steps}")
    method = method or prev.guidance.method
    recipe = recipe_path(method_recipe(method, None, stage))
    values = {"prompt": prev.prompt, "seed": prev.seed, "prior": to_dict(prev)["prior"],
              "guidance": {"method": method}, "geometry": {"type": stage}}
    if steps is not None:
        values["trainer"] = {"max_steps": steps}
    cfg = build_config(recipe, list(overrides), values)
    start = getattr(cfg.geometry, stage)  # geometry.mesh or geometry.texture
    start.init, start.init_path = "run", str(previous.path.resolve())
    carry_colour_shape(cfg, prev)
    return cfg, recipe
