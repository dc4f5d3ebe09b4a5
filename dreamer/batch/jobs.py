"""A batch's jobs: read from a JOBS file and checked, every one, before any job starts.

JOBS is either a text file with one prompt a line (blank lines and lines starting with # skipped),
or a YAML list whose items are a prompt or a mapping of: prompt (required), method,
representation, prior, seed, steps, overrides (a list of key=value strings, as on the command line).
Each job becomes an ordinary run folder, DIR/<NNN>-<prompt>, made by the code `dreamer generate`
runs; the options given to `dreamer batch` (key=value) apply to every job after its own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError
from ..priors.factory import check_prior
from ..recipes import generate_config
from ..runs import slugify
from ..yamldata import clip, first_line, loads

KEYS = ("prompt", "method", "representation", "prior", "seed", "steps", "overrides")


@dataclass
class Job:
    prompt: str
    method: str | None = None
    representation: str | None = None
    prior: str | None = None
    seed: int | None = None
    steps: int | None = None
    overrides: list = field(default_factory=list)
    line: int = 0  # in the JOBS file, for messages

    def spec(self) -> dict:
        """What the worker needs to make the run (plain data: it travels as JSON)."""
        return {k: v for k, v in asdict(self).items() if k != "line"}


def read_jobs(path: Path, shared_overrides: list[str] = ()) -> list[Job]:
    """The jobs of a JOBS file, each checked as `dreamer generate` would check it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the jobs file {clip(path)} ({first_line(exc, 60)}); "
                        f"pass a text file with one prompt a line or a YAML list of jobs") from None
    jobs = _yaml_jobs(text, path) if path.suffix.lower() in (".yaml", ".yml") else _text_jobs(text)
    if not jobs:
        raise UserError(f"the jobs file {clip(path)} holds no job; write one prompt a line")
    for job in jobs:
        job.overrides = list(job.overrides) + list(shared_overrides)
        check(job, path)
    return jobs


def _text_jobs(text: str) -> list[Job]:
    return [Job(prompt=line.strip(), line=n) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def _yaml_jobs(text: str, path: Path) -> list[Job]:
    data = loads(text, f"the jobs file {clip(path)}")
    if data is None:
        return []
    if not isinstance(data, list):
        raise UserError(f"the jobs file {clip(path)} must be a YAML list of jobs (- prompt: ...), "
                        f"got a {type(data).__name__}")
    lines = [node.start_mark.line + 1 for node in yaml.compose(text, Loader=yaml.SafeLoader).value]
    return [_job(item, line, path) for item, line in zip(data, lines)]


def _job(item, line: int, path: Path) -> Job:
    where = f"{clip(path)} line {line}"
    if isinstance(item, str):
        item = {"prompt": item}
    if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
        raise UserError(f"{where}: a job needs a prompt (- prompt: a rubber duck)")
    unknown = [str(k) for k in item if k not in KEYS]
    if unknown:
        raise UserError(f"{where}: unknown job key '{clip(unknown[0], 40)}'; a job may have: {', '.join(KEYS)}")
    for key, kind in (("seed", int), ("steps", int), ("method", str), ("representation", str), ("prior", str)):
        if item.get(key) is not None and (not isinstance(item[key], kind) or isinstance(item[key], bool)):
            raise UserError(f"{where}: {key} must be {'an integer' if kind is int else 'a string'}")
    overrides = item.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise UserError(f"{where}: overrides must be a list of key=value strings")
    return Job(**{**item, "overrides": overrides}, line=line)


def check(job: Job, path: Path) -> None:
    """The job's config built and checked as `dreamer generate` does, or a UserError naming its line."""
    from ..pipeline import validate  # start-up: the pipeline loads torch, after the file's own checks
    try:
        cfg = job_config(job.spec())
        check_prior(cfg.prior)
        validate(cfg)
    except UserError as exc:
        raise UserError(f"{clip(path)} line {job.line}: {first_line(exc, 300)}") from None


def job_config(spec: dict):
    """The config `dreamer generate` would build from the job's options."""
    cfg, _ = generate_config(spec["prompt"], spec.get("method"), spec.get("representation"), spec.get("prior"),
                             None, spec.get("steps"), spec.get("seed"), None, spec.get("overrides") or [])
    return cfg


def folder_name(index: int, job: Job) -> str:
    return f"{index + 1:03d}-{slugify(job.prompt)}"
