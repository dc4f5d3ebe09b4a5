"""Run folders (design.md section 4): config.yaml, run.json, checkpoints/, previews/, exports."""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from . import __version__
from .atomic import write_text
from .config import ExperimentConfig, build_config, load_recipe, to_yaml
from .errors import UserError

# atomic.atomic_path's names: "." + the final name + "." + mkstemp's 8 random characters + suffix
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")
CONFIG_FILE, STATE_FILE, CKPT_DIR, PREVIEW_DIR = "config.yaml", "run.json", "checkpoints", "previews"
LOCK_FILE = ".dreamer.lock"


def slugify(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug[:limit].rstrip("-")) or "run"


def default_run_dir(prompt: str, root: str = "outputs") -> Path:
    return Path(root) / f"{slugify(prompt)}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_output_dir(path: Path) -> None:
    """Fail before anything is written if `path` cannot become a fresh run folder."""
    if path.exists() and not path.is_dir():
        raise UserError(f"output path {path} is a file; pass --out with a folder path that does not exist yet")
    if path.is_dir() and any(path.iterdir()):
        raise UserError(f"output folder {path} already exists and is not empty; pick a new --out, "
                        f"or continue it with `dreamer resume {path}`")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"output path {path} lies under the file {parent}; choose a folder path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {parent}; pass --out with a folder you can write to")


def versions() -> dict:
    import pytorch_lightning
    import torch
    return {"dreamer": __version__, "torch": torch.__version__, "lightning": pytorch_lightning.__version__,
            "python": platform.python_version()}


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, cfg: ExperimentConfig) -> "RunDir":
        made = [p for p in (path, *path.parents) if not p.exists()]
        try:
            path.mkdir(parents=True, exist_ok=True)
            run = cls(path)
            write_text(run.path / CONFIG_FILE, to_yaml(cfg))
            run.write_state({"status": "created", "prompt": cfg.prompt, "step": 0,
                             "max_steps": cfg.trainer.max_steps, "created": time.time(), "pid": os.getpid(),
                             "versions": versions(), "timings": {}, "files": []})
        except OSError as exc:  # a folder that access() allowed but the file system refuses (/proc, full disk)
            for p in made:  # innermost first: leave nothing behind
                shutil.rmtree(p, ignore_errors=True)
            raise UserError(f"cannot create the run folder {path} ({exc.strerror or type(exc).__name__}); "
                            f"pass --out with a folder you can write to") from None
        return run

    def remove_temp_files(self) -> list[Path]:
        """Temporary files of atomic writes (.name.XXXXXXXX.ext) that a kill left behind."""
        stale = [p for p in self.path.rglob(".*") if p.is_file() and TEMP_NAME.match(p.name)]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    @classmethod
    def open(cls, path) -> "RunDir":
        path = Path(path)
        if not (path / CONFIG_FILE).is_file() or not (path / STATE_FILE).is_file():
            raise UserError(f"{path} is not a dreamer run folder (no {CONFIG_FILE} and {STATE_FILE}); "
                            f"pass the folder that `dreamer generate` printed")
        return cls(path)

    def config(self) -> ExperimentConfig:
        data = load_recipe(self.path / CONFIG_FILE)
        loss = data.get("loss") or {}
        if "lambda_sds" in loss:  # runs written before the guidance family named it lambda_guidance
            loss.setdefault("lambda_guidance", loss.pop("lambda_sds"))
        return build_config(None, None, data)

    @contextmanager
    def hold(self):
        """Keep other dreamer processes out of this run folder while this one writes it (training,
        export): two processes training one run would overwrite each other's checkpoints, and a
        resume would delete the other's half-written files. The operating system drops the lock
        with its process, so a killed run can be resumed at once."""
        with self.hold_if_free() as free:
            if not free:
                pid = run_progress(self.path).get("pid")
                who = f" (pid {pid})" if isinstance(pid, int) else ""
                raise UserError(f"{self.path} is in use by another dreamer process{who}; wait for it to end, "
                                f"or stop it and run `dreamer resume {self.path}`")
            yield self

    @contextmanager
    def hold_if_free(self):
        """True, holding the run folder as hold() does, when no other process holds it; else False."""
        lock = FileLock(self.path / LOCK_FILE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            held = False
        else:
            held = True
        if not held:  # yielded outside the except clause: the caller's errors do not chain to Timeout
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    @property
    def checkpoint(self) -> Path:
        return self.path / CKPT_DIR / "last.ckpt"

    @property
    def previews(self) -> Path:
        return self.path / PREVIEW_DIR

    def state(self) -> dict:
        try:
            return json.loads((self.path / STATE_FILE).read_text())
        except (OSError, ValueError):
            raise UserError(f"{self.path / STATE_FILE} is unreadable; the folder is not a usable run") from None

    def write_state(self, state: dict) -> None:
        write_text(self.path / STATE_FILE, json.dumps(state, indent=2, sort_keys=True))

    def update_state(self, **changes) -> dict:
        state = self.state()
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(state.get(key), dict):
                state[key].update(value)
            else:
                state[key] = value
        self.write_state(state)
        return state


def run_progress(path: Path) -> dict:
    """What a run folder says now, never raising: status, step, max_steps, metrics, error, timings
    (run.json) and the latest step (progress.json); {} where there is no run yet."""
    info: dict = {}
    for name in (STATE_FILE, "progress.json"):
        try:
            data = json.loads((Path(path) / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            info.update({k: v for k, v in data.items() if k != "step" or v >= info.get("step", 0)})
    return info
