"""The one place that builds Lightning's Trainer and runs a system with it (the job, the benches
and the tests alike). Each setting below that departs from Lightning's defaults says why."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings

import pytorch_lightning as pl
import torch

from .scene import compute_device


def quiet_lightning() -> None:
    """Lightning's advice lines are about datasets and loggers we do not have; our output is ours."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")  # the step counter is the data
    warnings.filterwarnings("ignore", ".*IterableDataset.*")
    warnings.filterwarnings("ignore", ".*litlogger.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")  # a frozen UNet copy (LoRA fake score)
    os.environ.setdefault("LITLOGGER_DISABLE", "1")


def make_trainer(max_steps: int, callbacks: list | None = None) -> pl.Trainer:
    quiet_lightning()
    return pl.Trainer(
        max_steps=max_steps,
        accelerator=compute_device().type, devices=1,  # one process per run: runs scale out as jobs, not as ranks
        logger=False,  # metrics.csv is written by our MetricsCSV callback, atomically with checkpoints
        enable_checkpointing=False,  # AtomicCheckpoint writes last.ckpt by temp name + rename
        enable_progress_bar=False,  # our Progress bar spans resumes and shows the loss and t
        enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0,  # no validation loop: previews are a callback
        deterministic=False,
        callbacks=list(callbacks or []))


def fit(trainer: pl.Trainer, system: pl.LightningModule, ckpt_path=None) -> None:
    """Train to trainer.max_steps, from `ckpt_path` when given (tensors and plain data only)."""
    with contextlib.redirect_stdout(io.StringIO()):  # Lightning's banner lines; our output is stderr
        trainer.fit(system, train_dataloaders=_steps(), ckpt_path=ckpt_path, weights_only=True)


def _steps():
    """Lightning needs a dataloader; the real data (cameras) come from the sampler by step."""
    return torch.utils.data.DataLoader(_Forever(), batch_size=None)


class _Forever(torch.utils.data.IterableDataset):
    def __iter__(self):
        i = 0
        while True:
            yield i
            i += 1
