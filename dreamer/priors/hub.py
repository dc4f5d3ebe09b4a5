"""Where a diffusers prior's files are: a local folder, or the local Hugging Face cache. Never the network.

Offline-first: dreamer does not download models. A hub id must already be in the cache (put there
by `hf download`); otherwise the run stops at once with one line saying how to get it. Only
huggingface_hub (a light import) is used here, so a bad --prior fails in about the time the CLI
takes to start.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..yamldata import clip, first_line

# model_index.json's pipeline class -> our prior family
FAMILIES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "IFPipeline": "if",
}


@dataclass(frozen=True)
class PriorSource:
    name: str  # what the user wrote (hub id or folder)
    folder: Path  # the folder holding model_index.json
    family: str  # sd | sdxl | if
    components: dict  # model_index.json: component -> [library, class]


def resolve(name: str, revision: str | None = None) -> PriorSource:
    """The local folder of `name` (a folder path or a cached hub id), checked to be a supported pipeline."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "model_index.json").is_file():
            raise UserError(f"prior folder {folder} has no model_index.json; point --prior at a diffusers "
                            f"pipeline folder (what `hf download <id>` or pipeline.save_pretrained writes)")
        return _source(name, folder.resolve())
    if _looks_like_path(name):
        raise UserError(f"prior folder {name} does not exist; pass a diffusers pipeline folder or a hub id "
                        f"such as stabilityai/stable-diffusion-2-1-base")
    return _source(name, _cached_snapshot(name, revision))


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") != 1 or "\\" in name


def _cached_snapshot(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError):
        raise UserError(
            f"prior '{repo_id}' is not in the local Hugging Face cache and dreamer never downloads models; "
            f"run `hf download {repo_id}` on a machine with internet (it fills ~/.cache/huggingface), "
            f"or pass --prior /path/to/a/pipeline/folder") from None


def _source(name: str, folder: Path) -> PriorSource:
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {folder / 'model_index.json'} ({first_line(e, 80)}); re-download the prior") from None
    if not isinstance(index, dict):
        raise UserError(f"{folder / 'model_index.json'} holds a JSON {type(index).__name__}, not the object a "
                        f"diffusers pipeline writes; re-download the prior")
    cls = index.get("_class_name", "?")
    if cls not in FAMILIES:
        raise UserError(f"prior {clip(name)} is a {clip(cls)}; dreamer supports {', '.join(FAMILIES)} "
                        f"(SD 1.x/2.x, SDXL base, DeepFloyd IF stage I)")
    components = {k: v for k, v in index.items() if not k.startswith("_") and isinstance(v, list)
                  and len(v) >= 2 and v[0] is not None}
    # Checked here, before a run folder exists: a pipeline folder without its parts is bad input.
    missing = [k for k in components if not (folder / k).is_dir() or not any((folder / k).iterdir())]
    if missing:
        raise UserError(f"prior folder {folder} lists {', '.join(missing)} in model_index.json but has no files "
                        f"for them; download the whole pipeline (hf download <id>) or save it with save_pretrained")
    return PriorSource(name, folder, FAMILIES[cls], components)
