"""Prompt embeddings cached on disk, keyed by the text encoder's identity and the prompt.

Text encoders are big (T5-XXL for DeepFloyd IF is 9 GB) while a run needs a handful of prompts;
with the cache a second run of the same prompt never loads them. Each entry is one safetensors
file written atomically (temporary name, then rename), so two runs writing the same entry at once
both leave a complete file, and a reader never sees half of one.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..atomic import cache_dir, write_with


def model_fingerprint(folder: Path, subfolders: list[str]) -> str:
    """Identity of the text encoders: their configs and tokenizer files by content, weights by
    name, size and modification time (hashing gigabytes of weights per run would be slow)."""
    h = hashlib.sha256()
    for sub in subfolders:
        root = folder / sub
        if not root.is_dir():
            continue
        for f in sorted(root.iterdir()):
            if not f.is_file():
                continue
            h.update(f"{sub}/{f.name}".encode())
            if f.suffix in (".json", ".txt", ".model"):
                h.update(f.read_bytes())
            else:
                st = f.stat()
                h.update(f"{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:24]


class EmbeddingCache:
    def __init__(self, fingerprint: str, root: Path | None = None, enabled: bool = True):
        self.fingerprint, self.enabled = fingerprint, enabled
        self.root = (root or cache_dir() / "embeddings") / fingerprint

    def path(self, prompt: str) -> Path:
        key = hashlib.sha256(json.dumps(prompt).encode()).hexdigest()[:32]
        return self.root / f"{key}.safetensors"

    def get(self, prompt: str) -> torch.Tensor | None:
        if not self.enabled:
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        path = self.path(prompt)
        if not path.is_file():
            return None
        try:
            entry = load_file(path)
        except (SafetensorError, OSError):  # damaged (a full disk): recompute and overwrite
            return None
        return entry["embedding"]

    def put(self, prompt: str, embedding: torch.Tensor) -> None:
        if not self.enabled:
            return
        from safetensors.torch import save_file
        tensor = embedding.detach().float().cpu().contiguous()
        write_with(self.path(prompt), lambda tmp: save_file({"embedding": tensor}, str(tmp),
                                                            metadata={"prompt": prompt}))
