"""The whole job: create a run folder, optimize, export, evaluate; and resume/export of old runs."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from systems.scene import Scene, compute_device

from . import budget, checkpoints, stages, threads
from .cameras import orbit
from .config import ExperimentConfig
from .errors import UserError
from .eval.metrics import toy_silhouette_iou
from .export.video import write_video
from .export.placement import placement
from .export.usdz import MISSING as USD_MISSING
from .export.usdz import usd_available, write_usdz
from .export.writers import write_glb, write_obj
from .guidance import FAKE_SCORE_METHODS
from .priors.factory import build_prior, check_prior, denoiser_metadata
from .representations import representation_class
from .runs import RunDir, check_output_dir, default_run_dir, run_progress
from .toy.catalogue import Catalogue, toy_object
from .toy.denoiser_file import check_trained_on
from .yamldata import first_line


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def validate(cfg: ExperimentConfig) -> None:
    """Every check that needs no heavy work, so bad input fails before anything is written."""
    if not cfg.prompt.strip():
        raise UserError('the prompt is empty; describe the object, e.g. dreamer generate "a rubber duck" '
                        '(dreamer list-prompts shows what the toy prior knows)')
    if cfg.guidance.particles > 1 and cfg.guidance.method not in FAKE_SCORE_METHODS:
        raise UserError(f"guidance.particles={cfg.guidance.particles} needs a method with a fake score "
                        f"({', '.join(FAKE_SCORE_METHODS)}), not {cfg.guidance.method}; set guidance.particles=1")
    representation_class(cfg.geometry.type).validate(cfg)
    validate_export(cfg.export)
    budget.check_run(cfg)
    validate_colours(cfg, check_prior(cfg.prior))
    if cfg.prior.name == "toy":
        catalogue = Catalogue.with_extension(cfg.prior.catalogue)
        obj, _ = catalogue.resolve(cfg.prompt)
        if cfg.prior.world == "trained" and obj is not None:
            check_trained_on(denoiser_metadata(cfg.prior.denoiser)["objects"], catalogue.objects[obj].name)
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


def validate_export(e) -> None:
    """What the schema cannot say of export settings (for new runs and `dreamer export` alike)."""
    budget.check_export(e)
    if "usdz" in e.formats and not usd_available():
        raise UserError(USD_MISSING)


def _callbacks(cfg: ExperimentConfig, run: RunDir, progress: bool, stage: str | None = None,
               watcher: RunDir | None = None) -> list:
    """`stage`: the label of a chained run's stage; `watcher`: the run folder whose progress.json
    also shows this stage's (a coarse stage inside its mesh run)."""
    from .callbacks import AtomicCheckpoint, MetricsCSV, Previews, Progress, ProgressFile  # start-up: Lightning's
    # Order matters: metrics are flushed before the checkpoint that they must agree with.
    t = cfg.trainer
    files = [ProgressFile(r, t.max_steps, stage) for r in (run, watcher) if r is not None]
    return [Progress(t.max_steps, disable=not progress, desc=stage or "optimizing"), *files,
            Previews(run, t.val_every), MetricsCSV(run, t.checkpoint_every),
            AtomicCheckpoint(run, t.checkpoint_every, t.keep_checkpoint_every)]


def build_system(cfg: ExperimentConfig, restore: bool = False):
    # start-up: Lightning loads only to train (seconds that bad input, export and eval skip)
    from systems.text_to_3d import TextTo3DSystem
    return TextTo3DSystem(cfg, build_prior(cfg.prior, progress=say), restore)


def train(run: RunDir, cfg: ExperimentConfig, progress: bool = True, stage: str | None = None,
          watcher: RunDir | None = None):
    count, why = threads.run_threads(cfg.threads)
    if count:
        torch.set_num_threads(count)
    if why and progress:
        say(why)
    from systems.trainer import fit, make_trainer  # start-up: Lightning, to train only
    torch.manual_seed(cfg.seed)
    # From a checkpoint, the representations are only shaped (it fills them): a chained stage
    # does not read its previous run again.
    system = build_system(cfg, restore=run.checkpoint.is_file())
    trainer = make_trainer(cfg.trainer.max_steps, _callbacks(cfg, run, progress, stage, watcher))
    device = compute_device()
    for rep in system.particles:  # kernel builds and backend fallbacks show here, not inside step 0
        rep.prepare_device(device, say)
    ckpt = run.checkpoint if run.checkpoint.is_file() else None
    started = time.time()
    run.update_state(status="running")
    fit(trainer, system, ckpt)
    if trainer.interrupted:  # Lightning swallows Ctrl+C; the run is not finished, so do not export
        raise KeyboardInterrupt
    seconds = time.time() - started
    run.update_state(step=trainer.global_step, status="trained",
                     timings={"train_seconds": round(seconds, 1)}, skipped_steps=system.skipped_steps)
    return system


def load_checkpoint_state(run: RunDir) -> dict:
    """The last checkpoint's state dict (every tensor of the system, the fake score's included)."""
    if not run.checkpoint.is_file():
        raise UserError(f"{run.path} has no checkpoint yet; run `dreamer resume {run.path}` first")
    return checkpoints.load(run.checkpoint)["state_dict"]


def load_system(run: RunDir, cfg: ExperimentConfig) -> Scene:
    """Representations and background from the last checkpoint (no prior, no Lightning)."""
    state = load_checkpoint_state(run)
    system = Scene(cfg, restore=True)
    # The fake score (VSD/ESD/DSD) belongs to training; export and evaluation do not need it.
    weights = {k: v for k, v in state.items() if not k.startswith("guidance.")}
    try:
        system.load_state_dict(weights)
    except RuntimeError as exc:  # a checkpoint of another configuration
        raise UserError(checkpoints.damaged_message(run.checkpoint, "its tensors do not fit this run's "
                                                    f"config.yaml: {first_line(exc, 60)}")) from None
    return system.to(compute_device()).eval()


def export(run: RunDir, cfg: ExperimentConfig, system) -> list[Path]:
    """Mesh, texture, the representation's own files and the turntable, as cfg.export asks; every
    file at export.height with export.pivot (the turntable and the metrics stay in field units)."""
    e = cfg.export
    written, tm, placed = [], None, None
    started = time.time()
    for k, rep in enumerate(system.particles):
        folder = run.path if k == 0 else run.path / "particles" / str(k)  # particle 0 is the asset
        folder.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            mesh = rep.to_mesh(e)
        where = placement(mesh.vertices, e.height, e.pivot)
        mesh = mesh.transformed(where.scale, where.offset)
        if "glb" in e.formats:
            written.append(write_glb(mesh, folder / "model.glb"))
        if "obj" in e.formats:
            written += write_obj(mesh, folder / "model.obj")
        if "usdz" in e.formats:
            written.append(write_usdz(mesh, folder / "model.usdz"))
        written += rep.export_extras(folder, e.formats, where)
        if k == 0:  # the asset's numbers
            tm, placed = mesh, where
    if e.turntable:
        written.append(write_turntable(run, cfg, system))
    # the placement lets `dreamer eval` bring the files back to field units, where the truth lives
    run.update_state(timings={"export_seconds": round(time.time() - started, 1)},
                     mesh={"vertices": int(len(tm.vertices)), "faces": int(len(tm.faces))},
                     placement={"scale": placed.scale, "offset": list(placed.offset)})
    return written


def write_turntable(run: RunDir, cfg: ExperimentConfig, system) -> Path:
    c, e = cfg.camera, cfg.export
    cams = orbit(e.turntable_frames, c.eval_elevation, c.eval_distance, c.eval_fovy, c.eval_resolution)
    rgb = system.render_views(cams)["rgb"]
    frames = [(f.clamp(0, 1).cpu().numpy() * 255).astype("uint8") for f in rgb]
    return write_video(frames, run.path / "turntable.mp4", e.turntable_fps)


def evaluate_toy(run: RunDir, cfg: ExperimentConfig, system) -> dict:
    """Silhouette IoU against the toy ground truth at 8 held-out views (toy prompts only)."""
    if cfg.prior.name != "toy":
        return {}
    truth = toy_object(cfg.prior, cfg.prompt)

    ious = []
    for k in range(len(system.particles)):
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
    # Lightning leaves the system on the CPU; queries run where it trained, and only their results
    # (grids, colours, images) come back to the CPU for marching cubes, baking and the writers.
    system = system.to(compute_device())
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
    if stages.has_coarse_stage(cfg):  # checked now: nothing is written for a bad earlier stage either
        earlier = stages.chain(cfg)[:-1]
        for previous in earlier:
            validate(previous)
        stages.carry_colour_shape(cfg, earlier[-1])
    run = RunDir.create(path, cfg)
    if recipe is not None:  # after every check: bad input gets its one line and nothing else
        say(f"recipe: {recipe}")
    with run.hold():
        return run, _train_and_finish(run, cfg, progress)


def resume(run_path: str, progress: bool = True) -> tuple[RunDir, dict]:
    run = RunDir.open(run_path)
    cfg = run.config()
    cfg.out_dir = str(run.path)  # where it is now, if the folder was moved (its stages live inside it)
    validate(cfg)
    with run.hold():  # before anything is removed or rewritten: the files may be another process's
        if run.checkpoint.is_file():
            checkpoints.load(run.checkpoint)  # a damaged one is refused before run.json changes
        run.remove_temp_files()  # left by a kill during an atomic write
        run.update_state(max_steps=cfg.trainer.max_steps, pid=os.getpid())  # config.yaml may have raised it
        return run, _train_and_finish(run, cfg, progress)


def _coarse_stage(run: RunDir, cfg: ExperimentConfig, progress: bool, labels: list, watcher: RunDir) -> None:
    """Train and export the previous stage in RUN/coarse (created, resumed, or already done), its own
    previous stage first; `labels`: the progress labels of the chain ending at `cfg`."""
    folder = run.path / stages.COARSE_FOLDER
    if run_progress(folder).get("status") == "done":
        return
    if (folder / "config.yaml").is_file():
        coarse_run = RunDir.open(folder)
        coarse = coarse_run.config()
        coarse.out_dir = str(folder)
        coarse_run.remove_temp_files()
    else:
        coarse = stages.coarse_config(cfg)
        coarse_run = RunDir.create(folder, coarse)
    if stages.has_coarse_stage(coarse):
        _coarse_stage(coarse_run, coarse, progress, labels[:-1], watcher)
    coarse_run.update_state(pid=os.getpid())
    system = train(coarse_run, coarse, progress, labels[-2], watcher=watcher)
    finish(coarse_run, coarse, system)


def _train_and_finish(run: RunDir, cfg: ExperimentConfig, progress: bool) -> dict:
    """Train, evaluate, export; whatever stops it, run.json says so (failed with the error line,
    or interrupted), never "running"."""
    stage = "training"
    try:
        labels = stages.stage_labels(cfg)
        if stages.has_coarse_stage(cfg):
            stage = "the coarse stage"
            _coarse_stage(run, cfg, progress, labels, watcher=run)
            stage = "training"
        system = train(run, cfg, progress, labels[-1])
        stage = "export"  # the checkpoint is complete: `dreamer export` can retry with other settings
        return finish(run, cfg, system)
    except KeyboardInterrupt:
        run.update_state(status="interrupted")
        raise
    except BaseException as exc:
        extra = {"skipped_steps": exc.skipped_steps} if hasattr(exc, "skipped_steps") else {}
        run.update_state(status="failed", error=first_line(exc, 400), failed_in=stage, **extra)
        raise
