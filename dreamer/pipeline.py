"""The whole job: create a run folder, optimize, export, evaluate; and resume/export of old runs."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import torch

from . import budget, checkpoints
from .config import ExperimentConfig
from .errors import UserError
from .yamldata import clip, first_line
from .runs import RunDir, check_output_dir, default_run_dir



def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def validate(cfg: ExperimentConfig) -> None:
    """Every check that needs no heavy work, so bad input fails before anything is written."""
    from .guidance import FAKE_SCORE_METHODS, METHODS
    from .priors.factory import check_prior
    if not cfg.prompt.strip():
        raise UserError('the prompt is empty; describe the object, e.g. dreamer generate "a rubber duck" '
                        '(dreamer list-prompts shows what the toy prior knows)')
    if cfg.guidance.method not in METHODS:
        raise UserError(f"unknown method '{clip(cfg.guidance.method)}'; choose one of: {', '.join(METHODS)}")
    if cfg.guidance.particles > 1 and cfg.guidance.method not in FAKE_SCORE_METHODS:
        raise UserError(f"guidance.particles={cfg.guidance.particles} needs a method with a fake score "
                        f"({', '.join(FAKE_SCORE_METHODS)}), not {cfg.guidance.method}; set guidance.particles=1")
    if cfg.geometry.type == "gaussians":
        validate_gaussians(cfg)
    validate_export(cfg.export)
    budget.check_run(cfg)
    validate_colours(cfg, check_prior(cfg.prior))
    if cfg.prior.name == "toy":
        from .toy.catalogue import Catalogue
        catalogue = Catalogue.with_extension(cfg.prior.catalogue)
        catalogue.resolve(cfg.prompt)
        if cfg.guidance.negative_prompt.strip():  # the toy prior embeds it like a prompt
            try:
                catalogue.resolve(cfg.guidance.negative_prompt)
            except UserError as exc:
                raise UserError(f"guidance.negative_prompt: {exc}") from None


def validate_colours(cfg: ExperimentConfig, source) -> None:
    """RGB fields, or (prior.rgb_as_latents) fields whose colours are a latent prior's 4 channels."""
    g = cfg.geometry
    if cfg.prior.rgb_as_latents:
        if source is None or source.family == "if":
            name = "the toy prior" if source is None else "DeepFloyd IF"
            raise UserError(f"prior.rgb_as_latents needs a latent prior (Stable Diffusion, SDXL), but {name} works "
                            f"on pixels; drop prior.rgb_as_latents")
        if g.color_channels != 4:
            raise UserError("prior.rgb_as_latents=true needs geometry.color_channels=4 (the latent channels); "
                            "see configs/latentnerf-sd21.yaml")
        if cfg.material.shaded_prob > 0:
            raise UserError("latent colours cannot be lit: set material.shaded_prob=0 with prior.rgb_as_latents")
    elif g.color_channels != 3:
        raise UserError(f"geometry.color_channels={g.color_channels}: fields are RGB (3) unless "
                        f"prior.rgb_as_latents=true (4)")
    if cfg.background.type == "solid" and len(cfg.background.color) != g.color_channels:
        raise UserError(f"background.color has {len(cfg.background.color)} values but the field has "
                        f"{g.color_channels} colour channels; give {g.color_channels}")


def validate_gaussians(cfg: ExperimentConfig) -> None:
    g = cfg.geometry.gaussians
    if g.init in ("nerf", "ply"):
        want = "a finished NeRF run folder" if g.init == "nerf" else "a 3DGS .ply file"
        if not g.init_path or not Path(g.init_path).exists():
            raise UserError(f"geometry.gaussians.init={g.init} needs geometry.gaussians.init_path: {want} "
                            f"({g.init_path or 'not set'} does not exist)")
    if cfg.guidance.particles != 1:
        raise UserError("Gaussians train one particle; set guidance.particles=1 or use --representation nerf")
    if cfg.geometry.color_channels != 3:
        raise UserError("Gaussians carry RGB colours; prior.rgb_as_latents needs --representation nerf")


def validate_export(e) -> None:
    """Export settings, checked for new runs and for `dreamer export` alike."""
    for fmt in e.formats:
        if fmt not in ("glb", "obj", "ply"):
            raise UserError(f"unknown export.formats '{fmt}'; choose one of: glb, obj, ply (Gaussians)")
    if e.resolution < 16:
        raise UserError(f"export resolution must be at least 16, got {e.resolution}")
    if e.faces < 100:
        raise UserError(f"export face count must be at least 100, got {e.faces}")
    budget.check_export(e)


def _quiet_lightning():
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*IterableDataset.*")
    warnings.filterwarnings("ignore", ".*litlogger.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")  # a frozen UNet copy (LoRA fake score)
    os.environ.setdefault("LITLOGGER_DISABLE", "1")


def _trainer(cfg: ExperimentConfig, run: RunDir, progress: bool):
    import pytorch_lightning as pl

    from .callbacks import AtomicCheckpoint, MetricsCSV, Previews, Progress, ProgressFile
    _quiet_lightning()
    # Order matters: metrics are flushed before the checkpoint that they must agree with.
    callbacks = [Progress(cfg.trainer.max_steps, disable=not progress),
                 ProgressFile(run, cfg.trainer.max_steps),
                 Previews(run, cfg.trainer.val_every),
                 MetricsCSV(run, cfg.trainer.checkpoint_every),
                 AtomicCheckpoint(run, cfg.trainer.checkpoint_every, cfg.trainer.keep_checkpoint_every)]
    return pl.Trainer(max_steps=cfg.trainer.max_steps, accelerator="auto", devices=1, logger=False,
                      callbacks=callbacks, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, log_every_n_steps=10, deterministic=False)


def build_system(cfg: ExperimentConfig):
    from systems.text_to_3d import TextTo3DSystem

    from .priors.factory import build_prior
    prior = build_prior(cfg.prior, progress=say)
    return TextTo3DSystem(cfg, prior)


def train(run: RunDir, cfg: ExperimentConfig, progress: bool = True):
    from systems.text_to_3d import steps_per_epoch_forever
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    system = build_system(cfg)
    trainer = _trainer(cfg, run, progress)
    ckpt = run.checkpoint if run.checkpoint.is_file() else None
    started = time.time()
    run.update_state(status="running")
    with contextlib.redirect_stdout(io.StringIO()):  # Lightning's banner lines; our output is stderr
        trainer.fit(system, train_dataloaders=steps_per_epoch_forever(), ckpt_path=ckpt, weights_only=True)
    if trainer.interrupted:  # Lightning swallows Ctrl+C; the run is not finished, so do not export
        raise KeyboardInterrupt
    seconds = time.time() - started
    run.update_state(step=trainer.global_step, status="trained",
                     timings={"train_seconds": round(seconds, 1)}, skipped_steps=system.skipped_steps)
    return system


def load_system(run: RunDir, cfg: ExperimentConfig):
    """Geometry and background from the last checkpoint (no prior needed)."""
    from systems.text_to_3d import TextTo3DSystem
    if not run.checkpoint.is_file():
        raise UserError(f"{run.path} has no checkpoint yet; run `dreamer resume {run.path}` first")
    state = checkpoints.load(run.checkpoint)
    system = TextTo3DSystem(cfg, prior=None)
    # The fake score (VSD/ESD/DSD) belongs to training; export and evaluation do not need it.
    weights = {k: v for k, v in state["state_dict"].items() if not k.startswith("guidance.")}
    try:
        system.load_state_dict(weights)
    except RuntimeError as exc:  # a checkpoint of another configuration
        raise UserError(checkpoints.damaged_message(run.checkpoint, "its tensors do not fit this run's "
                                                    f"config.yaml: {first_line(exc, 60)}")) from None
    return system.eval()


def export(run: RunDir, cfg: ExperimentConfig, system) -> list[Path]:
    """Mesh, texture and turntable as cfg.export asks."""
    from .export.mesh import textured_mesh_from_field
    from .export.writers import write_glb, write_obj
    e, g = cfg.export, cfg.geometry
    written, tm = [], None
    started = time.time()
    for k, (field, _) in enumerate(system.particles()):
        folder = run.path if k == 0 else run.path / "particles" / str(k)  # particle 0 is the asset
        folder.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            mesh = textured_mesh_from_field(field.density, field.display_albedo, g.radius, e.resolution,
                                            g.isosurface_threshold, e.faces, e.texture_size)
        if "glb" in e.formats:
            written.append(write_glb(mesh, folder / "model.glb"))
        if "obj" in e.formats:
            written += write_obj(mesh, folder / "model.obj")
        if "ply" in e.formats and g.type == "gaussians":  # a NeRF has no splats to write
            from .geometry.gaussians import write_splats_ply
            write_splats_ply(field, folder / "splats.ply")
            written.append(folder / "splats.ply")
        tm = tm if k else mesh
    if e.turntable:
        written.append(write_turntable(run, cfg, system))
    run.update_state(timings={"export_seconds": round(time.time() - started, 1)},
                     mesh={"vertices": int(len(tm.vertices)), "faces": int(len(tm.faces))})
    return written


def write_turntable(run: RunDir, cfg: ExperimentConfig, system) -> Path:
    from .cameras import orbit
    from .export.video import write_video
    c, e = cfg.camera, cfg.export
    cams = orbit(e.turntable_frames, c.eval_elevation, c.eval_distance, c.eval_fovy, c.eval_resolution)
    rgb = system.render_views(cams)["rgb"]
    frames = [(f.clamp(0, 1).cpu().numpy() * 255).astype("uint8") for f in rgb]
    return write_video(frames, run.path / "turntable.mp4", e.turntable_fps)


def evaluate_toy(run: RunDir, cfg: ExperimentConfig, system) -> dict:
    """Silhouette IoU against the toy ground truth at 8 held-out views (toy prompts only)."""
    from .eval.evaluate import toy_object
    from .eval.metrics import toy_silhouette_iou
    if cfg.prior.name != "toy":
        return {}
    truth = toy_object(cfg)

    ious = []
    for k in range(len(system.particles())):
        def opacity(cams, k=k):
            return system.render_views(cams, mode="albedo", particle=k)["opacity"][..., 0]
        ious.append(toy_silhouette_iou(opacity, truth, cfg.camera))
    metrics = {"silhouette_iou_8views": round(ious[0], 4)}
    if len(ious) > 1:
        metrics["silhouette_iou_8views_particles"] = [round(v, 4) for v in ious]
    run.update_state(metrics=metrics)
    return metrics


def finish(run: RunDir, cfg: ExperimentConfig, system) -> dict:
    if cfg.prior.name == "toy":
        say("evaluating against the toy ground truth, then exporting mesh, texture and turntable")
    else:
        say("exporting mesh, texture and turntable")
    system = system.cpu()  # marching cubes, baking and the writers take CPU tensors
    metrics = evaluate_toy(run, cfg, system)  # first: cheap, and useful even if export fails
    files = export(run, cfg, system)
    state = run.state()
    names = sorted({str(p.relative_to(run.path)) for p in files} | set(state.get("files", [])))
    run.update_state(status="done", files=names)
    return {"files": files, "metrics": metrics}


def generate(cfg: ExperimentConfig, out: str | None = None, progress: bool = True,
             recipe: Path | None = None) -> tuple[RunDir, dict]:
    if cfg.prior.catalogue:  # the run folder must work from any directory later (resume, export)
        cfg.prior.catalogue = str(Path(cfg.prior.catalogue).resolve())
    validate(cfg)
    path = Path(out) if out else default_run_dir(cfg.prompt)
    check_output_dir(path)
    cfg.out_dir = str(path)
    run = RunDir.create(path, cfg)
    if recipe is not None:  # after every check: bad input gets its one line and nothing else
        say(f"recipe: {recipe}")
    return run, _train_and_finish(run, cfg, progress)


def resume(run_path: str, progress: bool = True) -> tuple[RunDir, dict]:
    run = RunDir.open(run_path)
    cfg = run.config()
    validate(cfg)
    if run.checkpoint.is_file():
        checkpoints.load(run.checkpoint)  # a damaged one is refused before run.json changes
    run.remove_temp_files()  # left by a kill during an atomic write
    run.update_state(max_steps=cfg.trainer.max_steps, pid=os.getpid())  # config.yaml may have raised it
    return run, _train_and_finish(run, cfg, progress)


def _train_and_finish(run: RunDir, cfg: ExperimentConfig, progress: bool) -> dict:
    """Train, evaluate, export; whatever stops it, run.json says so (failed with the error line,
    or interrupted), never "running"."""
    stage = "training"
    try:
        system = train(run, cfg, progress)
        stage = "export"  # the checkpoint is complete: `dreamer export` can retry with other settings
        return finish(run, cfg, system)
    except KeyboardInterrupt:
        run.update_state(status="interrupted")
        raise
    except BaseException as exc:
        extra = {"skipped_steps": exc.skipped_steps} if hasattr(exc, "skipped_steps") else {}
        run.update_state(status="failed", error=first_line(exc, 400), failed_in=stage, **extra)
        raise
