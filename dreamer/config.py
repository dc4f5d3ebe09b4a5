"""Recipes: YAML files with inheritance, dotlist overrides and typed, bounded validation.

A recipe may start with `extends: other.yaml` (a path relative to the recipe or the name of a
shipped recipe in configs/, or a list of them, merged in order). The bases are loaded first, then
the recipe is merged on top, then the command line's `key=value` overrides. The result is checked
against the dataclasses below, which are the schema: an unknown key fails and names the closest
valid key; a value of the wrong type, outside its range (`Int`, `Float`, `Schedule`, `Numbers`,
`Ints`), not one of its choices (`Choice`) or not finite fails with one line. Every value is data:
nothing is interpolated or resolved.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional, Union

from . import yamldata
from .errors import UserError
from .schedule import check_schedule, is_number, knots
from .yamldata import clip

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MAX_STEPS = 10_000_000  # bound for step counts and periods
MAX_SEED = 2**31 - 1  # seeds are mixed into generator seeds by multiplication; this keeps them in int64


class Sched:
    """Marker type: a number or a schedule list."""


class NumberOrAuto:
    """Marker type: a number or the string "auto"."""


@dataclass(frozen=True)
class Range:
    """Bounds of a number (or of every number in a list or schedule)."""
    lo: Optional[float] = None
    hi: Optional[float] = None
    above: bool = False  # lo itself is excluded
    below: bool = False  # hi itself is excluded

    def problem(self, x) -> Optional[str]:
        if not math.isfinite(x):
            return "must be a finite number"
        if self.lo is not None and (x < self.lo or (self.above and x == self.lo)):
            return f"must be {'above' if self.above else 'at least'} {_num(self.lo)}"
        if self.hi is not None and (x > self.hi or (self.below and x == self.hi)):
            return f"must be {'below' if self.below else 'at most'} {_num(self.hi)}"
        return None


@dataclass(frozen=True)
class Items:
    """A list's element type, bounds and length (`length` None: any length of at least min_len)."""
    tp: type
    range: Range
    length: Optional[int] = None
    min_len: int = 1


@dataclass(frozen=True)
class OneOf:
    options: tuple


def Int(lo=None, hi=None):  # noqa: N802 - schema types read as types
    return Annotated[int, Range(lo, hi)]


def Float(lo=None, hi=None, above=False, below=False):  # noqa: N802
    return Annotated[float, Range(lo, hi, above, below)]


def Schedule(lo=None, hi=None, above=False):  # noqa: N802 - the bounds apply to every value of the schedule
    return Annotated[Sched, Range(lo, hi, above)]


def Numbers(length, lo=None, hi=None, above=False, below=False):  # noqa: N802
    return Annotated[list, Items(float, Range(lo, hi, above, below), length)]


def Ints(lo=None, hi=None, min_len=1):  # noqa: N802
    return Annotated[list, Items(int, Range(lo, hi), None, min_len)]


def Choice(*options):  # noqa: N802
    return Annotated[str, OneOf(tuple(options))]


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass
class PriorConfig:
    name: str = "toy"  # "toy", a hub id already in the local cache, or a diffusers pipeline folder
    view_fidelity: Annotated[NumberOrAuto, Range(0, 1)] = "auto"  # toy: an object's mass on references of the asked view; auto: 0.7 (exact world), 0.3 (realistic, used there only with view_odds=0)
    refs_per_object: Int(1, 5000) = 200  # toy: reference renders per catalogue object
    catalogue: Optional[str] = None  # toy: YAML file adding user objects from meshes
    world: Choice("exact", "realistic", "trained") = "exact"  # toy: the exact mixture score, one that generalizes like a real prior, or a trained UNet (prior.denoiser)
    denoiser: Optional[str] = None  # toy, trained world: the weights file docs/bench-quality/train_toy_denoiser.py wrote
    posterior_resolution: Int(1, 64) = 8  # toy, realistic world: the references are weighed on an R x R view of x_t
    posterior_temperature: Float(1, 1e6) = 64.0  # toy, realistic world: the weighing assumes sqrt(T) times the noise
    front_lean: Float(0, 10) = 3.0  # toy, realistic world: a reference weighs exp(lean * cos(azimuth)) in its group
    view_blind: Float(0, 1) = 0.0  # toy, realistic world: this share of the denoised image is the prompt's mean reference, whatever x_t
    weigh_on: Choice("image", "silhouette") = "image"  # toy, realistic world: weigh references on their images, or on their outlines alone
    view_odds: Float(0, 20) = 1.0  # toy, realistic world: > 0: a view suffix multiplies its label's odds by e^this; 0: it moves view_fidelity of the mass
    lean_empty_prompt: bool = False  # toy, realistic world: the empty prompt leans to the front too (false: only prompts naming an object do)
    local_window: Int(0, 63) = 0  # toy, realistic world: > 0: below local_below, each pixel weighs the references on the W x W window around it
    local_below: Int(0, 1000) = 0  # toy, realistic world: the timestep below which the weighing is local
    local_temperature: Float(1, 1e6) = 1.0  # toy, realistic world: the local weighing assumes sqrt(T) times the noise
    # diffusers priors (SD 1.x/2.x, SDXL, DeepFloyd IF stage I):
    revision: Optional[str] = None  # hub revision (branch, tag or commit) to take from the cache
    device: str = "auto"  # auto (cuda if present) | cpu | cuda | cuda:N
    dtype: Choice("auto", "float32", "float16", "bfloat16") = "auto"  # auto: float16 on a GPU, float32 on a CPU
    resolution: Int(0, 4096) = 0  # image size renders are resized to before encoding; 0: the UNet's own
    vae_mode: Choice("sample", "mean") = "sample"  # of the VAE posterior when encoding renders
    attention: Choice("sdpa", "default") = "sdpa"  # sdpa (torch's fused attention) | the checkpoint's processors
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
    f_fs: Numbers(3, -100, 100) = field(default_factory=lambda: [4.0, 0.5, -2.426])  # front negative, front-side half
    f_sf: Numbers(3, -100, 100) = field(default_factory=lambda: [4.0, 0.5, -2.426])  # side negative, front-side half
    f_sb: Numbers(3, -100, 100) = field(default_factory=lambda: [1.0, 0.5, -0.606])  # side negative, back half
    f_fsb: Numbers(3, -100, 100) = field(default_factory=lambda: [1.0, 0.5, 0.967])  # front negative, back half


@dataclass
class FakeScoreConfig:
    """The online-trained score of the renders (VSD, ESD, DSD)."""
    guidance_scale_lora: Schedule(0, 1000) = 1.0  # VSD: eps_psi(c=0) + s_l (eps_psi(c) - eps_psi(c=0))
    camera_dropout: Float(0, 1) = 0.1  # chance the camera is replaced by zeros when training it
    width: Int(1, 1024) = 32  # toy prior: channels of the residual network
    lora_rank: Int(1, 1024) = 4  # diffusers priors: LoRA rank


@dataclass
class CSDConfig:
    """Classifier score distillation: g = w (c_cond e_y + c_neg e_neg + c_null e_null + c_noise eps)."""
    cond_scale: Schedule(-1000, 1000) = 1.0
    negative_scale: Schedule(-1000, 1000) = 0.0  # the reference's uncond_scale
    null_scale: Schedule(-1000, 1000) = -1.0
    noise_scale: Schedule(-1000, 1000) = 0.0
    perp_neg_scale: Schedule(-1000, 1000) = 0.0  # weight of the Perp-Neg term (needs guidance.perp_neg.enabled)
    grad_normalize: bool = False  # divide g by its norm over the whole batch


@dataclass
class ASDConfig:
    plus_ratio: Float(0, 1) = 0.1  # the fake estimate sits Delta_t = r (t - t_min) u later
    plus_random: bool = True  # u ~ U(0, 1) rather than 1


@dataclass
class NFSDConfig:
    threshold: Int(0, 1000) = 200  # below it the domain direction is the unconditional score alone


@dataclass
class IntervalConfig:
    """ISM and TSM (and CSM's deterministic noising): DDIM inversion of the render."""
    delta_t: Schedule(0, 999) = 80  # interval between x_s and x_t (the reference anneals 100 -> 80)
    inversion_stride: Int(1, 1000) = 200  # largest step of the DDIM inversion from 0 to s
    denoise_guidance_scale: Float(0, 1000) = 1.0  # >1: the inversion uses e_null + w (e_neg - e_null)
    offset_noise: Float(0, 10) = 0.1  # start noise eps + offset * per-channel noise
    gamma: Float(0, 1) = 0.3  # TSM: mu = s + (t - s) sqrt(1 - gamma^2); gamma = 1 is ISM


@dataclass
class BSDConfig:
    balance_ratio: Float(0, 10000) = 15.0  # lambda_r, classifier : smoothing (the reference hard-codes 15)
    auto: bool = False  # the auto variant: smoothing term 1.25 (e_u - eps), its own norm weight (not guidance.weighting)
    offset_noise: Float(0, 10) = 0.1  # noise eps + offset * per-channel noise, as the reference's


@dataclass
class DSDConfig:
    classifier_weight: Schedule(-1000, 1000) = 0.5  # lam_c on (e_y - e_null)
    variational_weight: Schedule(-1000, 1000) = 0.5  # lam_v on (eps_cfg - eps_psi)


@dataclass
class CDSConfig:
    t_start: Int(1, 999) = 700  # t_n goes from t_start to t_end with sqrt(progress)
    t_end: Int(0, 999) = 20
    anneal_steps: Int(0, MAX_STEPS) = 0  # 0: the run's max_steps
    perturb_factor: Int(1, 1000) = 100  # t = t_n + U_int[end_gap, end_gap + perturb_factor)
    end_gap: Int(0, 999) = 100
    noise_seed: Int(0, MAX_SEED) = 0  # the one fixed noise eps* shared by every view and step


WEIGHTINGS = ("sds", "uniform", "fantasia3d", "rho", "alpha")


# The guidance registry's names (dreamer.guidance.METHODS; a test holds the two in step): the schema
# knows them without importing torch, so an unknown method fails at load like any other choice.
GUIDANCE_METHODS = ("sds", "vsd", "esd", "csd", "csm", "asd", "nfsd", "ism", "tsm", "bsd", "dsd", "cds")
# The representation registry's names (dreamer.representations.REPRESENTATIONS), likewise.
REPRESENTATIONS = ("nerf", "gaussians", "mesh", "texture")
# ply and splat: a Gaussian run's splats (splats.ply, splats.splat; other runs write none)
EXPORT_FORMATS = ("glb", "obj", "ply", "splat", "usdz")
DEFAULT_EXPORT_FORMATS = ("glb", "obj", "ply")


@dataclass
class GuidanceConfig:
    method: Choice(*GUIDANCE_METHODS) = "sds"
    guidance_scale: Schedule(0, 1000) = 7.5  # diffusers convention: eps_u + s * (eps_c - eps_u)
    weighting: Choice(*WEIGHTINGS) = "sds"  # sds: 1 - abar_t | uniform | fantasia3d | rho: sqrt((1-abar)/abar) | alpha: sqrt(abar)
    min_step_percent: Schedule(0, 1) = 0.02
    max_step_percent: Schedule(0, 1) = 0.98
    sqrt_anneal: bool = False  # HiFA: one deterministic t that decreases with sqrt(progress)
    grad_clip: Optional[Schedule(0, 1e6, above=True)] = None  # elementwise clip of g (score debiasing uses a schedule)
    pixel_clip: Optional[Schedule(0, 1e6, above=True)] = None  # TSM: per-pixel L-inf clip of the image gradient, e.g. 0.05
    view_dependent_prompting: bool = True
    negative_prompt: str = ""  # fills CFG's unconditional slot when set ("" = the null prompt)
    perp_neg: PerpNegConfig = field(default_factory=PerpNegConfig)
    fake_score: FakeScoreConfig = field(default_factory=FakeScoreConfig)
    particles: Int(1, 64) = 1  # VSD/ESD/DSD: assets optimized together, sharing one fake score
    entropy_weight: Schedule(0, 1) = 0.5  # ESD's lambda: 0 is VSD, 1 is full distribution matching
    csd: CSDConfig = field(default_factory=CSDConfig)
    asd: ASDConfig = field(default_factory=ASDConfig)
    nfsd: NFSDConfig = field(default_factory=NFSDConfig)
    interval: IntervalConfig = field(default_factory=IntervalConfig)
    bsd: BSDConfig = field(default_factory=BSDConfig)
    dsd: DSDConfig = field(default_factory=DSDConfig)
    cds: CDSConfig = field(default_factory=CDSConfig)


@dataclass
class CameraConfig:
    batch_size: Int(1) = 1
    width: Ints(8) = field(default_factory=lambda: [64])  # one per resolution stage
    height: Ints(8) = field(default_factory=lambda: [64])
    resolution_milestones: Ints(0, MAX_STEPS, min_len=0) = field(default_factory=list)
    elevation_range: Numbers(2, -90, 90) = field(default_factory=lambda: [-10.0, 45.0])
    azimuth_range: Numbers(2, -360, 360) = field(default_factory=lambda: [-180.0, 180.0])
    distance_range: Numbers(2, 0, 1000, above=True) = field(default_factory=lambda: [2.0, 2.0])  # the toy references' distance
    fovy_range: Numbers(2, 0, 179, above=True) = field(default_factory=lambda: [40.0, 40.0])
    batch_uniform_azimuth: bool = True
    light_distance_range: Numbers(2, 0, 1000, above=True) = field(default_factory=lambda: [0.8, 1.5])
    front_threshold: Float(0, 180) = 45.0
    back_threshold: Float(0, 180) = 45.0
    overhead_threshold: Float(-90, 90) = 60.0
    eval_elevation: Float(-90, 90) = 15.0
    eval_distance: Float(0, 1000, above=True) = 2.0
    eval_fovy: Float(0, 179, above=True) = 40.0
    eval_resolution: Int(8) = 128


@dataclass
class HashGridConfig:
    """tinycudann's HashGrid keys; smaller than Instant-NGP's (16 levels, 2^19) for CPU speed."""
    n_levels: Int(1, 32) = 8
    n_features_per_level: Int(1, 8) = 2
    log2_hashmap_size: Int(4, 26) = 16
    base_resolution: Int(1, 4096) = 16
    per_level_scale: Float(1, 4) = 1.346  # 16 * 1.346^7 ~ 128 cells across at the finest level
    backend: Choice("torch", "tinycudann") = "torch"  # tinycudann: its fused kernels, CUDA only; fixed for a run's life


@dataclass
class DensifyConfig:
    """gsplat's DefaultStrategy (grow by duplicating/splitting Gaussians with large screen-space
    gradients, prune transparent or huge ones); steps are training steps."""
    enabled: bool = True
    refine_start_iter: Int(0, MAX_STEPS) = 100
    refine_stop_iter: Int(0, MAX_STEPS) = 450
    refine_every: Int(1, MAX_STEPS) = 50
    grow_grad2d: Float(0, 1e6) = 0.0002  # mean |d loss / d means2d|, in gsplat's normalisation
    grow_fraction: Float(0, 1) = 0.1  # > 0: grow this share of Gaussians per refinement instead (scale-free)
    grow_scale3d: Float(0, 1e6) = 0.01  # larger (x scene scale) are split, smaller duplicated
    prune_opa: Float(0, 1) = 0.005
    prune_scale3d: Float(0, 1e6, above=True) = 0.1
    reset_every: Int(0, MAX_STEPS) = 0  # opacity reset period (0: never); done by dreamer, gsplat 1.5.3's never fires
    max_gaussians: Int(1, 10_000_000) = 30000  # growth pauses at this count (CPU time grows with it)


@dataclass
class GaussianConfig:
    init: Choice("random", "nerf", "ply") = "random"  # in a ball | sample a finished NeRF run | a 3DGS file
    init_path: Optional[str] = None  # the run folder (nerf) or .ply file (ply)
    num_points: Int(1, 10_000_000) = 4096  # random and nerf init
    init_radius: Float(0, 100, above=True) = 0.5  # random init: ball radius (points uniform in volume)
    init_opacity: Float(0, 1, above=True, below=True) = 0.1
    init_scale: Float(0, 100) = 0.0  # 0: the mean distance to the 3 nearest points
    sh_degree: Int(0, 3) = 0  # view-dependent colour beyond 0
    backend: Choice("auto", "torch", "gsplat") = "auto"  # auto: gsplat on CUDA, ours elsewhere
    rasterize_mode: Choice("classic", "antialiased") = "classic"  # antialiased: Mip-Splatting's compensation
    eps2d: Float(0, 100) = 0.3  # added to every 2D covariance (pixels^2)
    near_plane: Float(0, 100, above=True) = 0.01
    tile_size: Int(1, 256) = 4  # our rasterizer's tiles: on a CPU smaller ones cull more (dreamer bench splats --tile-sizes)
    densify: DensifyConfig = field(default_factory=DensifyConfig)


@dataclass
class MeshConfig:
    """The mesh stage (DMTet): a surface refined from a coarse NeRF or Gaussian stage."""
    resolution: Int(8, 256) = 32  # tetrahedral grid cells per axis (32-64 on a CPU, up to 128 on a GPU)
    # coarse: this run trains its coarse stage first (in coarse/) | run: from init_path | sphere: from a
    # sphere of half the radius, no coarse stage (Fantasia3D's start)
    init: Choice("coarse", "run", "sphere") = "coarse"
    init_path: Optional[str] = None  # init=run: a finished NeRF or Gaussian run folder
    coarse: Choice("nerf", "gaussians") = "nerf"  # init=coarse: the coarse stage's representation
    coarse_recipe: Optional[str] = None  # init=coarse: its recipe (default: configs/<method>-<coarse>.yaml)
    coarse_steps: Optional[Int(1, MAX_STEPS)] = None  # init=coarse: its steps (default: its recipe's)
    colour_fit_steps: Int(0, 100_000) = 300  # from Gaussians: steps fitting the colour field to their colours
    fit_steps: Int(0, 100_000) = 200  # steps fitting the grid to the coarse run's exported surface (Chamfer), before guidance


@dataclass
class TextureConfig:
    """The texture stage: a UV atlas's texels optimized at fixed geometry (a previous stage's mesh)."""
    # coarse: this run trains its previous stage first (in coarse/) | run: a finished run, init_path
    init: Choice("coarse", "run") = "coarse"
    init_path: Optional[str] = None  # init=run: the finished mesh, NeRF or Gaussian run whose exported mesh it textures
    coarse: Choice("nerf", "gaussians", "mesh") = "gaussians"  # init=coarse: the previous stage (DreamGaussian's: gaussians)
    coarse_recipe: Optional[str] = None  # init=coarse: its recipe (default: configs/<method>-<coarse>.yaml)
    coarse_steps: Optional[Int(1, MAX_STEPS)] = None  # init=coarse: its steps (default: its recipe's)
    # texels per side, a power of two; auto: 1024 on a GPU, 512 on a CPU (its renders are small)
    size: Annotated[NumberOrAuto, Range(16, 8192)] = "auto"


@dataclass
class GeometryConfig:
    type: Choice(*REPRESENTATIONS) = "nerf"
    radius: Float(0, 100, above=True) = 1.0
    gaussians: GaussianConfig = field(default_factory=GaussianConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    pos_encoding: HashGridConfig = field(default_factory=HashGridConfig)
    mlp_width: Int(1, 1024) = 64
    mlp_layers: Int(0, 16) = 1
    density_activation: Choice("softplus", "exp") = "softplus"
    density_bias: Choice("blob_magic3d", "blob_dreamfusion", "none") = "blob_magic3d"
    density_blob_scale: Float(0, 1000) = 10.0
    density_blob_std: Float(0, 100, above=True) = 0.5
    normal_type: Choice("finite_difference", "analytic") = "finite_difference"
    finite_difference_eps: Float(0, 1, above=True) = 0.01
    isosurface_threshold: Annotated[NumberOrAuto, Range(0, 1e6, above=True)] = "auto"  # density level of the exported surface
    color_channels: Int(3, 4) = 3  # 3: RGB albedo; 4: Stable Diffusion latents (needs prior.rgb_as_latents)
    color_activation: Choice("sigmoid", "none") = "sigmoid"  # sigmoid (RGB in [0, 1]) | none (latents are unbounded)


@dataclass
class RendererConfig:
    num_samples_per_ray: Int(1) = 64
    randomized: bool = True
    occupancy_resolution: Int(8, 512) = 64
    occupancy_update_every: Int(1, MAX_STEPS) = 16
    occupancy_threshold: Float(0, 1e6) = 0.01
    occupancy_warmup_steps: Int(0, MAX_STEPS) = 0
    eval_chunk_size: Int(1) = 65536
    # torch (any device) | nerfacc (a NeRF's rays; CUDA only, not yet verified on a GPU) | nvdiffrast (a mesh's
    # rasterizer; CUDA only, installed separately: non-commercial licence; not yet verified on a GPU)
    backend: Choice("torch", "nerfacc", "nvdiffrast") = "torch"


@dataclass
class MaterialConfig:
    ambient_light: Float(0, 10) = 0.3
    diffuse_light: Float(0, 10) = 0.7
    ambient_only_steps: Int(0, MAX_STEPS) = 0
    shaded_prob: Float(0, 1) = 1.0  # after ambient_only_steps: chance a render is shaded by a light
    textureless_prob: Float(0, 1) = 0.0  # of shaded renders: chance the albedo is replaced by white


@dataclass
class BackgroundConfig:
    type: Choice("solid", "mlp") = "solid"
    color: Numbers(None, -100, 100) = field(default_factory=lambda: [1.0, 1.0, 1.0])
    random_aug_prob: Float(0, 1) = 0.0  # chance a render uses a random solid colour instead


@dataclass
class OptimizerConfig:
    lr_encoding: Schedule(0, 100) = 0.01
    lr_mlp: Schedule(0, 100) = 0.001
    lr_background: Schedule(0, 100) = 0.001
    lr_fake_score: Schedule(0, 100) = 0.001  # VSD/ESD/DSD: the fake score's own learning rate
    # Gaussians, per raw parameter (DreamGaussian's values; means decay over the run)
    lr_means: Schedule(0, 100) = field(default_factory=lambda: [0, 0.001, 0.00002, 600])
    lr_scales: Schedule(0, 100) = 0.005
    lr_quats: Schedule(0, 100) = 0.005
    lr_opacities: Schedule(0, 100) = 0.05
    lr_sh0: Schedule(0, 100) = 0.01
    lr_shN: Schedule(0, 100) = 0.0005
    # The mesh stage: signed distances and bounded offsets (tanh of these) of the tetrahedral grid
    lr_sdf: Schedule(0, 100) = 0.001
    lr_offsets: Schedule(0, 100) = 0.01
    lr_texture: Schedule(0, 100) = 0.01  # the texture stage: the texel pyramid's logits
    betas: Numbers(2, 0, 1, below=True) = field(default_factory=lambda: [0.9, 0.99])
    eps: Float(0, 1, above=True) = 1e-15


@dataclass
class LossConfig:
    lambda_guidance: Schedule(0, 1e6) = 1.0  # the distillation term, whatever the method
    lambda_fake_score: Schedule(0, 1e6) = 1.0  # VSD/ESD/DSD: the fake score's denoising loss
    lambda_orient: Schedule(0, 1e6) = 0.0
    # Means over pixels, where the distillation term sums over them: they need large weights to matter
    # (on the toy prior lambda_opaque 1 and 50 change nothing, 2000 makes renders opaque)
    lambda_sparsity: Schedule(0, 1e6) = 0.0
    lambda_opaque: Schedule(0, 1e6) = 0.0
    # The mesh stage: neighbouring face normals agree, vertices sit at their neighbours' mean, and
    # the signed distance does not flip sign along grid edges away from the surface
    lambda_normal_consistency: Schedule(0, 1e6) = 0.0
    lambda_laplacian: Schedule(0, 1e6) = 0.0
    lambda_sdf_sign: Schedule(0, 1e6) = 0.0


@dataclass
class TrainerConfig:
    max_steps: Int(1, MAX_STEPS) = 600
    val_every: Int(1, MAX_STEPS) = 100
    checkpoint_every: Int(1, MAX_STEPS) = 50  # checkpoints/last.ckpt
    keep_checkpoint_every: Int(0, MAX_STEPS) = 300  # also keep checkpoints/step-N.ckpt (0: never)
    max_consecutive_bad_steps: Int(1, MAX_STEPS) = 20


@dataclass
class ExportConfig:
    formats: Annotated[list, OneOf(EXPORT_FORMATS)] = field(default_factory=lambda: list(DEFAULT_EXPORT_FORMATS))
    height: Float(0, 1e4, above=True) = 1.0  # metres: the exported asset's height (+Y up)
    pivot: Choice("base", "center") = "base"  # base: stands on y = 0, centred in x and z
    resolution: Int(16) = 128
    faces: Int(100, 100_000_000) = 20000
    texture_size: Int(16) = 512
    turntable: bool = True
    turntable_frames: Int(1) = 48
    turntable_fps: Int(1, 240) = 24


@dataclass
class ExperimentConfig:
    prompt: str = ""
    seed: Int(0, MAX_SEED) = 0
    out_dir: Optional[str] = None
    threads: Int(0, 4096) = 0  # torch intra-op threads; 0: torch's default less the cores other processes use (dreamer/threads.py)
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
        raise UserError(f"config file {clip(path)} does not exist; pick one from {CONFIG_DIR}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {clip(path)} ({type(exc).__name__}); pass a UTF-8 YAML file") from None
    data = yamldata.loads(text, f"config file {clip(path)}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {clip(path)} must hold a mapping of keys, not a {type(data).__name__}; "
                        f"pass a recipe such as configs/sds-nerf.yaml")
    return data


def merge(base: dict, top: dict) -> dict:
    """Deep merge of plain dicts: mappings merge key by key, anything else in `top` replaces."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_recipe(path: Union[str, Path], _seen: tuple = ()) -> dict:
    """Load a recipe and its `extends:` chain into one plain dict (bases first, recipe on top)."""
    path = Path(path).resolve()
    if path in _seen:
        raise UserError(f"config {path} extends itself through {[str(p) for p in _seen]}; break the cycle")
    data = _read_yaml(path)
    parents = data.pop("extends", None)
    if parents is None:
        return data
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not parents or not all(isinstance(p, str) for p in parents):
        raise UserError(f"config {clip(path)}: extends must be a file name or a list of file names, "
                        f"got {clip(repr(parents))}")
    base: dict = {}
    for parent in parents:
        base = merge(base, load_recipe(_parent_path(path, parent), _seen + (path,)))
    return merge(base, data)


def _parent_path(recipe: Path, parent: str) -> Path:
    """A recipe's base: relative to the recipe, else a shipped recipe of that name (so a user's
    recipe anywhere can say `extends: sds-nerf.yaml`)."""
    near = recipe.parent / parent
    if near.exists():
        return near
    if (CONFIG_DIR / parent).is_file():
        return CONFIG_DIR / parent
    raise UserError(f"config {clip(recipe.name)} extends {clip(parent)}, which is neither next to it nor a "
                    f"shipped recipe; name a file relative to it or one from {CONFIG_DIR}")


def parse_overrides(overrides: list[str]) -> dict:
    """key=value items into a nested dict; each value is parsed as YAML data (never interpolated)."""
    out: dict = {}
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise UserError(f"override {clip(item)!r} must look like key=value, e.g. trainer.max_steps=200")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise UserError(f"override {clip(item)!r} has an empty key part; write e.g. trainer.max_steps=200")
        value = yamldata.loads(text, f"the value of override {clip(key, 60)}") if text.strip() else ""
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {clip(item)!r} sets a key inside {part}, which is a value")
        node[parts[-1]] = value
    return out


def build_config(recipe: Optional[Union[str, Path]] = None, overrides: Optional[list[str]] = None,
                 values: Optional[dict] = None) -> ExperimentConfig:
    """Recipe file (optional) + a dict of values + dotlist overrides -> validated config."""
    merged = load_recipe(recipe) if recipe else {}
    if values:
        merged = merge(merged, values)
    if overrides:
        merged = merge(merged, parse_overrides(overrides))
    return from_dict(ExperimentConfig, merged, "")


def from_dict(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'}: expected a mapping of keys, got {clip(repr(data))}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            hint = f"did you mean '{(where + '.') if where else ''}{close[0]}'?" if close else \
                f"valid keys here: {', '.join(names)}"
            raise UserError(f"unknown config key '{clip(path)}'; {hint}")
        kwargs[key] = _check_value(hints[key], value, path)
    return cls(**kwargs)


def _check_value(tp, value, path):
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *meta = typing.get_args(tp)
        value = _check_value(base, value, path)
        for m in meta:
            _check_meta(m, value, path)
        return value
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
        if value == "auto" or (is_number(value) and math.isfinite(value)):
            return value
        raise UserError(f"{path} must be a finite number or 'auto', got {clip(repr(value))}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{path} must be true or false, got {clip(repr(value))}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"{path} must be an integer, got {clip(repr(value))}")
    if tp is float:
        if is_number(value):
            return float(value)
        raise UserError(f"{path} must be a number, got {clip(repr(value))}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{path} must be a string, got {clip(repr(value))}")
    if tp is list or origin is list:
        if isinstance(value, (list, tuple)):
            return list(value)
        raise UserError(f"{path} must be a list, got {clip(repr(value))}")
    return value


def _check_meta(meta, value, path) -> None:
    if isinstance(meta, OneOf):  # a value, or every item of a list
        for item in (value if isinstance(value, list) else [value]):
            if not isinstance(item, str) or item not in meta.options:
                raise UserError(f"unknown {path} '{clip(item)}'; choose one of: {', '.join(meta.options)}")
    elif isinstance(meta, Range):
        if value == "auto":  # NumberOrAuto
            return
        numbers = value if not isinstance(value, list) else knots(value)[1]  # a schedule's values
        if isinstance(value, list) and not all(math.isfinite(s) for s in knots(value)[0]):
            raise UserError(f"{path}: schedule steps must be finite, got {clip(repr(value))}")
        for x in ([numbers] if not isinstance(numbers, list) else numbers):
            problem = meta.problem(x)
            if problem:
                raise UserError(f"{path} {problem}, got {clip(repr(value))}")
    elif isinstance(meta, Items):
        want = "integers" if meta.tp is int else "numbers"
        if meta.length is not None and len(value) != meta.length:
            raise UserError(f"{path} must be a list of {meta.length} {want}, got {clip(repr(value))}")
        if len(value) < meta.min_len:
            raise UserError(f"{path} must not be empty; give at least one value, e.g. [64]")
        for x in value:
            ok = is_number(x) and (meta.tp is not int or isinstance(x, int))
            if not ok:
                raise UserError(f"{path} must be a list of {want}, got {clip(repr(value))}")
            problem = meta.range.problem(x)
            if problem:
                raise UserError(f"{path}: every value {problem}, got {clip(repr(value))}")


def choices(key: str, cls=None) -> tuple:
    """The options of a `Choice` key, e.g. choices("geometry.type") == ("nerf", "gaussians")."""
    head, _, rest = key.partition(".")
    tp = typing.get_type_hints(cls or ExperimentConfig, include_extras=True)[head]
    if rest:
        return choices(rest, tp)
    return next(m.options for m in typing.get_args(tp)[1:] if isinstance(m, OneOf))


def to_dict(cfg: ExperimentConfig) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: ExperimentConfig) -> str:
    return yamldata.dumps(to_dict(cfg))
