"""Lightning callbacks: progress with ETA, atomic checkpoints, preview grids."""
from __future__ import annotations

import json
import time

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from tqdm import tqdm

from .atomic import write_text, write_with
from .cameras import orbit


def due(trainer, every: int) -> bool:
    """True every `every` steps and at the last step."""
    return trainer.global_step % every == 0 or trainer.global_step >= trainer.max_steps


class Progress(pl.Callback):
    """One bar over the whole run: steps, it/s, ETA and the latest loss."""

    def __init__(self, max_steps: int, disable: bool = False, desc: str = "optimizing"):
        self.max_steps, self.disable, self.desc = max_steps, disable, desc
        self.bar = None

    def on_train_start(self, trainer, pl_module):
        self.bar = tqdm(total=self.max_steps, initial=trainer.global_step, desc=self.desc, unit="step",
                        dynamic_ncols=True, disable=self.disable,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining}, {rate_fmt}]{postfix}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        s = pl_module.last_stats
        self.bar.set_postfix_str(f"loss {s.get('loss', 0):.3g} t {s.get('t', 0):.0f}", refresh=False)
        self.bar.update(trainer.global_step - self.bar.n)

    def on_train_end(self, trainer, pl_module):
        if self.bar:
            self.bar.close()


class ProgressFile(pl.Callback):
    """progress.json in the run folder: step, total, steps per second and ETA, for watchers (the web
    UI) that cannot see the terminal. Rewritten atomically at most every `every_seconds`."""

    def __init__(self, run, max_steps: int, stage: str | None = None, every_seconds: float = 0.5):
        """`stage`: a chained run's stage label, written with the step ("stage 1/2 nerf")."""
        self.path, self.max_steps, self.every = run.path / "progress.json", max_steps, every_seconds
        self.stage = stage
        self.started = self.first_step = self.last_write = None

    def on_train_start(self, trainer, pl_module):
        self.started, self.first_step, self.last_write = time.time(), trainer.global_step, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now, step = time.time(), trainer.global_step
        if now - self.last_write < self.every and step < self.max_steps:
            return
        rate = (step - self.first_step) / max(now - self.started, 1e-9)
        eta = (self.max_steps - step) / rate if rate > 0 else None
        info = {"step": step, "max_steps": self.max_steps, "steps_per_second": rate, "eta_seconds": eta,
                "updated": now}
        if self.stage:
            info["stage"] = self.stage
        write_text(self.path, json.dumps(info))
        self.last_write = now


class AtomicCheckpoint(pl.Callback):
    """checkpoints/last.ckpt every `every` steps and at the end, plus step-N.ckpt every `keep_every`.

    Written to a temporary name and renamed, so a run killed mid-save keeps its previous checkpoint.
    """

    def __init__(self, run, every: int, keep_every: int = 0):
        self.run, self.every, self.keep_every = run, every, keep_every

    def _save(self, trainer, name: str):
        write_with(self.run.checkpoint.parent / name, lambda p: trainer.save_checkpoint(p))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if due(trainer, self.every):
            self._save(trainer, "last.ckpt")
            self.run.update_state(step=step, status="running")
        if self.keep_every and step % self.keep_every == 0:
            self._save(trainer, f"step-{step:06d}.ckpt")


def preview_grid(system, n_views: int = 4, resolution: int = 96) -> np.ndarray:
    """Rows of rgb | normal | opacity at `n_views` azimuths around the object."""
    c = system.cfg.camera
    cams = orbit(n_views, c.eval_elevation, c.eval_distance, c.eval_fovy, resolution)
    out = system.render_views(cams)
    normal = (out["normal"] * 0.5 + 0.5) * out["opacity"] + (1 - out["opacity"])
    rows = [torch.cat([out["rgb"][i], normal[i], out["opacity"][i].expand(-1, -1, 3)], 1) for i in range(n_views)]
    return (torch.cat(rows, 0).clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)  # on a GPU during training


class Previews(pl.Callback):
    def __init__(self, run, every: int):
        self.run, self.every = run, every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if due(trainer, self.every):
            grid = preview_grid(pl_module)
            write_with(self.run.previews / f"step-{step:06d}.png", lambda p: Image.fromarray(grid).save(p, format="PNG"))


class MetricsCSV(pl.Callback):
    """metrics.csv in the run folder, rewritten atomically at each checkpoint.

    On resume, rows past the checkpoint's step are dropped, so the file matches the restored run.
    """

    COLUMNS = ("step", "loss", "t", "grad_norm", "nfe", "loss_fake_score", "skipped", "gaussians")

    def __init__(self, run, every: int):
        self.path, self.every, self.rows = run.path / "metrics.csv", every, []

    def on_train_start(self, trainer, pl_module):
        self.rows = []
        if self.path.exists():
            for line in self.path.read_text().splitlines()[1:]:
                fields = line.split(",")
                if fields and fields[0].isdigit() and int(fields[0]) <= trainer.global_step:
                    self.rows.append(line)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        s, step = pl_module.last_stats, trainer.global_step
        self.rows.append(",".join([str(step)] + [f"{s.get(k, 0):.6g}" for k in self.COLUMNS[1:]]))
        if due(trainer, self.every):
            write_text(self.path, "\n".join([",".join(self.COLUMNS)] + self.rows) + "\n")
