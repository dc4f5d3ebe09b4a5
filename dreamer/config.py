"""Recipes: YAML files with inheritance, dotlist overrides and typed validation.

A recipe may start with `extends: other.yaml` (a path relative to the recipe). The base is loaded
first, then the recipe is merged on top, then the command line's `key=value` overrides. The result
is checked against the dataclasses below: an unknown key fails and names the closest valid key, a
value of the wrong type fails with the expected type. Fields typed `Sched` accept a number or a
schedule list (see dreamer.schedule).
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError
from .schedule import check_schedule, is_number

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class Sched:
    """Marker type: a number or a schedule list."""


class NumberOrAuto:
    """Marker type: a number or the string "auto"."""


@dataclass
class PriorConfig:
    name: str = "toy"  # "toy", a hub id already in the local cache, or a diffusers pipeline folder
    view_fidelity: float = 0.7  # toy: share of the mass on references whose view label matches
    refs_per_object: int = 200  # toy: reference renders per catalogue object
    catalogue: Optional[str] = None  # toy: YAML file adding user objects from meshes
    # diffusers priors (SD 1.x/2.x, SDXL, DeepFloyd IF stage I):
    revision: Optional[str] = None  # hub revision (branch, tag or commit) to take from the cache
    device: str = "auto"  # auto (cuda if present) | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (float16 on a GPU, float32 on a CPU) | float32 | float16 | bfloat16
    resolution: int = 0  # image size renders are resized to before encoding; 0: the UNet's own
    vae_mode: str = "sample"  # sample | mean of the VAE posterior when encoding renders
    attention: str = "sdpa"  # sdpa (torch's fused attention) | default (the checkpoint's processors)
    attention_slicing: bool = False  # less memory, slower
    channels_last: bool = True
    compile: bool = False  # torch.compile the UNet (slow first step, faster after)
    offload_text_encoders: bool = True  # move text encoders off the GPU once prompts are embedded
    embedding_cache: bool = True  # keep prompt embeddings on disk ($DREAMER_CACHE/embeddings)
    allow_pickle: bool = False  # allow .bin/.ckpt weights (pickle can run code): only for sources you trust
    rgb_as_latents: bool = False  # latent priors: the field renders 4-channel latents directly (Latent-NeRF)


@dataclass
class PerpNegConfig:
    """Perp-Neg (Armandpour et al.): subtract the parts of other views' scores that are
    perpendicular to this view's, with weights f(r) = a exp(-b r) + c of the azimuth blend r."""
    enabled: bool = False
    f_fs: list = field(default_factory=lambda: [4.0, 0.5, -2.426])  # front negative, front-side half
    f_sf: list = field(default_factory=lambda: [4.0, 0.5, -2.426])  # side negative, front-side half
    f_sb: list = field(default_factory=lambda: [1.0, 0.5, -0.606])  # side negative, back half
    f_fsb: list = field(default_factory=lambda: [1.0, 0.5, 0.967])  # front negative, back half


@dataclass
class FakeScoreConfig:
    """The online-trained score of the renders (VSD, ESD, DSD)."""
    guidance_scale_lora: Sched = 1.0  # VSD: eps_psi(c=0) + s_l (eps_psi(c) - eps_psi(c=0))
    camera_dropout: float = 0.1  # chance the camera is replaced by zeros when training it
    width: int = 32  # toy prior: channels of the residual network
    lora_rank: int = 4  # diffusers priors: LoRA rank


@dataclass
class CSDConfig:
    """Classifier score distillation: g = w (c_cond e_y + c_neg e_neg + c_null e_null + c_noise eps)."""
    cond_scale: Sched = 1.0
    negative_scale: Sched = 0.0  # the reference's uncond_scale
    null_scale: Sched = -1.0
    noise_scale: Sched = 0.0
    perp_neg_scale: Sched = 0.0  # weight of the Perp-Neg term (needs guidance.perp_neg.enabled)
    grad_normalize: bool = False  # divide g by its norm over the whole batch


@dataclass
class ASDConfig:
    plus_ratio: float = 0.1  # the fake estimate sits Delta_t = r (t - t_min) u later
    plus_random: bool = True  # u ~ U(0, 1) rather than 1


@dataclass
class NFSDConfig:
    threshold: int = 200  # below it the domain direction is the unconditional score alone


@dataclass
class IntervalConfig:
    """ISM and TSM (and CSM's deterministic noising): DDIM inversion of the render."""
    delta_t: Sched = 80  # interval between x_s and x_t (the reference anneals 100 -> 80)
    inversion_stride: int = 200  # largest step of the DDIM inversion from 0 to s
    denoise_guidance_scale: float = 1.0  # >1: the inversion uses e_null + w (e_neg - e_null)
    offset_noise: float = 0.1  # start noise eps + offset * per-channel noise
    gamma: float = 0.3  # TSM: mu = s + (t - s) sqrt(1 - gamma^2); gamma = 1 is ISM


@dataclass
class BSDConfig:
    balance_ratio: float = 15.0  # lambda_r, classifier : smoothing (the reference hard-codes 15)
    auto: bool = False  # the auto variant: smoothing term 1.25 (e_u - eps), batch-norm weight


@dataclass
class DSDConfig:
    classifier_weight: Sched = 0.5  # lam_c on (e_y - e_null)
    variational_weight: Sched = 0.5  # lam_v on (eps_cfg - eps_psi)


@dataclass
class CDSConfig:
    t_start: int = 700  # t_n goes from t_start to t_end with sqrt(progress)
    t_end: int = 20
    anneal_steps: int = 0  # 0: the run's max_steps
    perturb_factor: int = 100  # t = t_n + U_int[end_gap, end_gap + perturb_factor)
    end_gap: int = 100
    noise_seed: int = 0  # the one fixed noise eps* shared by every view and step


@dataclass
class GuidanceConfig:
    method: str = "sds"
    guidance_scale: Sched = 7.5  # diffusers convention: eps_u + s * (eps_c - eps_u)
    weighting: str = "sds"  # sds: 1 - abar_t | uniform | fantasia3d | rho: sqrt((1-abar)/abar) | alpha: sqrt(abar)
    min_step_percent: Sched = 0.02
    max_step_percent: Sched = 0.98
    sqrt_anneal: bool = False  # HiFA: one deterministic t that decreases with sqrt(progress)
    grad_clip: Optional[Sched] = None  # elementwise clip of g (score debiasing uses a schedule)
    pixel_clip: Optional[Sched] = None  # TSM: per-pixel L-inf clip of the image gradient, e.g. 0.05
    view_dependent_prompting: bool = True
    negative_prompt: str = ""  # fills CFG's unconditional slot when set ("" = the null prompt)
    perp_neg: PerpNegConfig = field(default_factory=PerpNegConfig)
    fake_score: FakeScoreConfig = field(default_factory=FakeScoreConfig)
    particles: int = 1  # VSD/ESD/DSD: assets optimized together, sharing one fake score
    entropy_weight: Sched = 0.5  # ESD's lambda: 0 is VSD, 1 is full distribution matching
    csd: CSDConfig = field(default_factory=CSDConfig)
    asd: ASDConfig = field(default_factory=ASDConfig)
    nfsd: NFSDConfig = field(default_factory=NFSDConfig)
    interval: IntervalConfig = field(default_factory=IntervalConfig)
    bsd: BSDConfig = field(default_factory=BSDConfig)
    dsd: DSDConfig = field(default_factory=DSDConfig)
    cds: CDSConfig = field(default_factory=CDSConfig)


@dataclass
class CameraConfig:
    batch_size: int = 1
    width: list = field(default_factory=lambda: [64])
    height: list = field(default_factory=lambda: [64])
    resolution_milestones: list = field(default_factory=list)
    elevation_range: list = field(default_factory=lambda: [-10.0, 45.0])
    azimuth_range: list = field(default_factory=lambda: [-180.0, 180.0])
    distance_range: list = field(default_factory=lambda: [2.4, 2.4])
    fovy_range: list = field(default_factory=lambda: [40.0, 40.0])
    batch_uniform_azimuth: bool = True
    light_distance_range: list = field(default_factory=lambda: [0.8, 1.5])
    front_threshold: float = 45.0
    back_threshold: float = 45.0
    overhead_threshold: float = 60.0
    eval_elevation: float = 15.0
    eval_distance: float = 2.4
    eval_fovy: float = 40.0
    eval_resolution: int = 128


@dataclass
class HashGridConfig:
    n_levels: int = 16
    n_features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    per_level_scale: float = 1.447269237440378


@dataclass
class DensifyConfig:
    """gsplat's DefaultStrategy (grow by duplicating/splitting Gaussians with large screen-space
    gradients, prune transparent or huge ones); steps are training steps."""
    enabled: bool = True
    refine_start_iter: int = 100
    refine_stop_iter: int = 450
    refine_every: int = 50
    grow_grad2d: float = 0.0002  # mean |d loss / d means2d|, in gsplat's normalisation
    grow_fraction: float = 0.1  # > 0: grow this share of Gaussians per refinement instead (scale-free)
    grow_scale3d: float = 0.01  # larger (x scene scale) are split, smaller duplicated
    prune_opa: float = 0.005
    prune_scale3d: float = 0.1
    reset_every: int = 0  # opacity reset period (0: never); done by dreamer, gsplat 1.5.3's never fires
    max_gaussians: int = 30000  # growth pauses at this count (CPU time grows with it)


@dataclass
class GaussianConfig:
    init: str = "random"  # random (in a ball) | nerf (sample a finished NeRF run) | ply (a 3DGS file)
    init_path: Optional[str] = None  # the run folder (nerf) or .ply file (ply)
    num_points: int = 4096  # random and nerf init
    init_radius: float = 0.5  # random init: ball radius (points uniform in volume)
    init_opacity: float = 0.1
    init_scale: float = 0.0  # 0: the mean distance to the 3 nearest points
    sh_degree: int = 0  # 0..3; view-dependent colour beyond 0
    backend: str = "auto"  # auto (gsplat on CUDA, ours elsewhere) | torch | gsplat
    rasterize_mode: str = "classic"  # classic | antialiased (Mip-Splatting's compensation)
    eps2d: float = 0.3  # added to every 2D covariance (pixels^2)
    near_plane: float = 0.01
    tile_size: int = 4  # our rasterizer's tiles: on a CPU smaller ones cull more (dreamer bench splats --tile-sizes)
    densify: DensifyConfig = field(default_factory=DensifyConfig)


@dataclass
class GeometryConfig:
    type: str = "nerf"  # nerf | gaussians
    radius: float = 1.0
    gaussians: GaussianConfig = field(default_factory=GaussianConfig)
    pos_encoding: HashGridConfig = field(default_factory=HashGridConfig)
    mlp_width: int = 64
    mlp_layers: int = 1
    density_activation: str = "softplus"  # softplus | exp
    density_bias: str = "blob_magic3d"  # blob_magic3d | blob_dreamfusion | none
    density_blob_scale: float = 10.0
    density_blob_std: float = 0.5
    normal_type: str = "finite_difference"  # finite_difference | analytic
    finite_difference_eps: float = 0.01
    isosurface_threshold: NumberOrAuto = "auto"  # density level of the exported surface
    color_channels: int = 3  # 3: RGB albedo; 4: Stable Diffusion latents (needs prior.rgb_as_latents)
    color_activation: str = "sigmoid"  # sigmoid (RGB in [0, 1]) | none (latents are unbounded)


@dataclass
class RendererConfig:
    num_samples_per_ray: int = 64
    randomized: bool = True
    occupancy_resolution: int = 64
    occupancy_update_every: int = 16
    occupancy_threshold: float = 0.01
    occupancy_warmup_steps: int = 64
    eval_chunk_size: int = 65536
    backend: str = "torch"  # torch (any device) | nerfacc (CUDA only; not yet verified on a GPU)


@dataclass
class MaterialConfig:
    ambient_light: float = 0.3
    diffuse_light: float = 0.7
    ambient_only_steps: int = 0
    shaded_prob: float = 1.0  # after ambient_only_steps: chance a render is shaded by a light
    textureless_prob: float = 0.0  # of shaded renders: chance the albedo is replaced by white


@dataclass
class BackgroundConfig:
    type: str = "solid"  # solid | mlp
    color: list = field(default_factory=lambda: [1.0, 1.0, 1.0])
    random_aug_prob: float = 0.0  # chance a render uses a random solid colour instead


@dataclass
class OptimizerConfig:
    lr_encoding: Sched = 0.01
    lr_mlp: Sched = 0.001
    lr_background: Sched = 0.001
    lr_fake_score: Sched = 0.001  # VSD/ESD/DSD: the fake score's own learning rate
    # Gaussians, per raw parameter (DreamGaussian's values; means decay over the run)
    lr_means: Sched = field(default_factory=lambda: [0, 0.001, 0.00002, 600])
    lr_scales: Sched = 0.005
    lr_quats: Sched = 0.005
    lr_opacities: Sched = 0.05
    lr_sh0: Sched = 0.01
    lr_shN: Sched = 0.0005
    betas: list = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1e-15


@dataclass
class LossConfig:
    lambda_guidance: Sched = 1.0  # the distillation term, whatever the method
    lambda_fake_score: Sched = 1.0  # VSD/ESD/DSD: the fake score's denoising loss
    lambda_orient: Sched = 0.0
    lambda_sparsity: Sched = 0.0
    lambda_opaque: Sched = 0.0


@dataclass
class TrainerConfig:
    max_steps: int = 600
    val_every: int = 100
    checkpoint_every: int = 50  # checkpoints/last.ckpt
    keep_checkpoint_every: int = 300  # also keep checkpoints/step-N.ckpt (0: never)
    max_consecutive_bad_steps: int = 20


@dataclass
class ExportConfig:
    formats: list = field(default_factory=lambda: ["glb", "obj", "ply"])  # ply: Gaussian runs' splats.ply
    resolution: int = 128
    faces: int = 20000
    texture_size: int = 512
    turntable: bool = True
    turntable_frames: int = 48
    turntable_fps: int = 24


@dataclass
class ExperimentConfig:
    prompt: str = ""
    seed: int = 0
    out_dir: Optional[str] = None
    threads: int = 0  # torch intra-op threads, 0 = torch's default
    prior: PriorConfig = field(default_factory=PriorConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    renderer: RendererConfig = field(default_factory=RendererConfig)
    material: MaterialConfig = field(default_factory=MaterialConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


# --------------------------------------------------------------------------------------------
# Loading


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pick one from {CONFIG_DIR}")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OmegaConfBaseException, ValueError, Exception) as exc:  # yaml.YAMLError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"config file {path} is not valid YAML ({first}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def load_recipe(path: Union[str, Path], _seen: tuple = ()) -> dict:
    """Load a recipe and its `extends:` chain into one plain dict (base first, recipe on top)."""
    path = Path(path).resolve()
    if path in _seen:
        raise UserError(f"config {path} extends itself through {[str(p) for p in _seen]}; break the cycle")
    data = _read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    base = load_recipe(path.parent / parent, _seen + (path,))
    return OmegaConf.to_container(OmegaConf.merge(base, data), resolve=False)


def parse_overrides(overrides: list[str]) -> dict:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise UserError(f"override {item!r} must look like key=value, e.g. trainer.max_steps=200")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)), resolve=False)
    except OmegaConfBaseException as exc:
        raise UserError(f"cannot parse overrides {overrides}: {str(exc).splitlines()[0]}") from None


def build_config(recipe: Optional[Union[str, Path]] = None, overrides: Optional[list[str]] = None,
                 values: Optional[dict] = None) -> ExperimentConfig:
    """Recipe file (optional) + a dict of values + dotlist overrides -> validated config."""
    merged = OmegaConf.create(load_recipe(recipe) if recipe else {})
    if values:
        merged = OmegaConf.merge(merged, values)
    if overrides:
        merged = OmegaConf.merge(merged, parse_overrides(overrides))
    try:
        data = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        raise UserError(f"cannot resolve config: {str(exc).splitlines()[0]}") from None
    return from_dict(ExperimentConfig, data, "")


def from_dict(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            hint = f"did you mean '{(where + '.') if where else ''}{close[0]}'?" if close else \
                f"valid keys here: {', '.join(names)}"
            raise UserError(f"unknown config key '{path}'; {hint}")
        kwargs[key] = _check_value(hints[key], value, path)
    return cls(**kwargs)


def _check_value(tp, value, path):
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _check_value(args[0], value, path)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp is Sched:
        check_schedule(value, path)
        return list(value) if isinstance(value, (list, tuple)) else value
    if tp is NumberOrAuto:
        if value == "auto" or is_number(value):
            return value
        raise UserError(f"{path} must be a number or 'auto', got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{path} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"{path} must be an integer, got {value!r}")
    if tp is float:
        if is_number(value):
            return float(value)
        raise UserError(f"{path} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{path} must be a string, got {value!r}")
    if tp is list or origin is list:
        if isinstance(value, (list, tuple)):
            return list(value)
        raise UserError(f"{path} must be a list, got {value!r}")
    return value


def to_dict(cfg: ExperimentConfig) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: ExperimentConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))
