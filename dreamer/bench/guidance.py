"""`dreamer bench guidance`: per method on the toy prior, seconds per step and prior (UNet)
evaluations per sample and step, measured on the same training loop users run.

Each method runs its own recipe (configs/<method>-nerf.yaml) for `steps` steps after `warmup`
untimed ones; the step time is the median over the timed steps, so one slow step (an occupancy
update, the garbage collector) does not move it.
"""
from __future__ import annotations

import statistics
import time

import pytorch_lightning as pl
import torch

from systems.text_to_3d import TextTo3DSystem
from systems.trainer import fit, make_trainer

from ..config import CONFIG_DIR, build_config
from ..priors.factory import build_prior


def _timed_steps(cfg, prior, steps: int, warmup: int) -> dict:
    class Clock(pl.Callback):
        def __init__(self):
            self.times, self.nfe, self.start = [], [], None

        def on_train_batch_start(self, trainer, module, batch, idx):
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, idx):
            if trainer.global_step > warmup:
                self.times.append(time.perf_counter() - self.start)
                self.nfe.append(module.last_stats["nfe"])

    clock = Clock()
    torch.manual_seed(cfg.seed)
    fit(make_trainer(warmup + steps, [clock]), TextTo3DSystem(cfg, prior))
    return {"seconds_per_step": statistics.median(clock.times), "nfe_per_sample": statistics.mean(clock.nfe)}


def run(methods: list[str], steps: int = 20, warmup: int = 3, prompt: str = "a rubber duck",
        batch_size: int = 1, say=print) -> list[dict]:
    rows, prior = [], None
    for method in methods:
        cfg = build_config(CONFIG_DIR / f"{method}-nerf.yaml", values={
            "prompt": prompt, "camera": {"batch_size": batch_size},
            "trainer": {"max_steps": warmup + steps}})
        prior = prior or build_prior(cfg.prior, progress=say)
        row = {"method": method, **_timed_steps(cfg, prior, steps, warmup)}
        say(f"{method:5s} {row['seconds_per_step']:.3f} s/step  {row['nfe_per_sample']:.2f} evaluations/sample")
        rows.append(row)
    return rows


def table(rows: list[dict], batch_size: int) -> str:
    base = next((r["seconds_per_step"] for r in rows if r["method"] == "sds"), None)
    lines = [f"| method | s/step (batch {batch_size}) | vs SDS | prior evaluations per sample and step |",
             "|---|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['seconds_per_step'] / base:.2f}x" if base else "-"
        lines.append(f"| {r['method']} | {r['seconds_per_step']:.3f} | {ratio} | {r['nfe_per_sample']:.2f} |")
    return "\n".join(lines)
