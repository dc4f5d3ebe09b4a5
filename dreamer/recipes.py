"""Which recipe a job runs and the config it resolves to: the one path from a prompt and options
(the CLI's flags, the web UI's form) to a validated config."""
from __future__ import annotations

from pathlib import Path

from .config import CONFIG_DIR, ExperimentConfig, GeometryConfig, build_config, choices
from .errors import UserError
from .yamldata import clip

DEFAULT_RECIPE = "sds-nerf.yaml"

# The published pairings, used when --prior names a real model and no --config is given: the toy
# recipes' scales are tuned to the toy prior and would be wrong for Stable Diffusion.
REAL_PRIOR_RECIPES = {"sds": "dreamfusion-sd21.yaml", "vsd": "prolificdreamer-sd21.yaml",
                      "esd": "prolificdreamer-esd-sd21.yaml", "ism": "luciddreamer-sd21.yaml",
                      "tsm": "dreamerxl-sdxl.yaml",
                      "sds-mesh": "magic3d-sd21.yaml"}  # <method>-<representation>: Magic3D's coarse-to-fine


def recipe_path(name: str | None) -> Path:
    """A recipe file by path, or by name inside configs/."""
    if name is None:
        return CONFIG_DIR / DEFAULT_RECIPE
    path = Path(name)
    if not path.exists() and (CONFIG_DIR / name).exists():
        return CONFIG_DIR / name
    if not path.is_file():
        raise UserError(f"config file {name} does not exist; pick one from {CONFIG_DIR}")
    return path


def method_recipe(method: str | None, prior: str | None = None, representation: str | None = None) -> str | None:
    """--method X without --config runs configs/X-<representation>.yaml, which carries X's defaults
    (X-nerf.yaml with geometry.type switched when X has no recipe for that representation), or the
    published recipe of X with a real prior when --prior names one."""
    if prior not in (None, "toy"):
        for key in (f"{method or 'sds'}-{representation}", method or "sds"):
            if key in REAL_PRIOR_RECIPES:
                return REAL_PRIOR_RECIPES[key]
    if method is None and representation is None:
        return None
    default = GeometryConfig().type  # every method has a recipe for the default representation
    for rep in (representation or default, default):
        if (CONFIG_DIR / f"{method or 'sds'}-{rep}.yaml").is_file():
            return f"{method or 'sds'}-{rep}.yaml"
    return None


def generate_config(prompt: str, method: str | None = None, representation: str | None = None,
                    prior: str | None = None, mesh_object: str | None = None, steps: int | None = None,
                    seed: int | None = None, config: str | None = None,
                    overrides: list[str] | tuple = (), export: dict | None = None) -> tuple[ExperimentConfig, Path]:
    """(config, recipe path) of `dreamer generate PROMPT [options] [key=value ...]`."""
    if steps is not None and steps < 1:
        raise UserError(f"steps must be a positive integer, got {steps}")
    for flag, value, key in (("method", method, "guidance.method"), ("representation", representation, "geometry.type")):
        if value is not None and value not in choices(key):
            raise UserError(f"unknown {flag} '{clip(value)}'; choose one of: {', '.join(choices(key))}")
    values: dict = {"prompt": prompt}
    if method is not None:
        values["guidance"] = {"method": method}
    if representation is not None:
        values["geometry"] = {"type": representation}
    if prior is not None:
        values["prior"] = {"name": prior}
    if mesh_object is not None:
        # start-up: user_objects needs torch, which a plain `dreamer generate` loads only after its checks
        from .toy.user_objects import single_object_catalogue
        values.setdefault("prior", {})["catalogue"] = str(single_object_catalogue(mesh_object, prompt))
    if steps is not None:
        values["trainer"] = {"max_steps": steps}
    if seed is not None:
        values["seed"] = seed
    if export:  # export settings given as options (height, pivot), checked by the schema like any value
        values["export"] = dict(export)
    recipe = recipe_path(config or method_recipe(method, prior, representation))
    return build_config(recipe, list(overrides), values), recipe
