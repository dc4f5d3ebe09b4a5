"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a run killed mid-write) sees either the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it vanishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; final files get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_with(path, writer: Callable[[Path], None]) -> None:
    """Call writer(tmp_path) and move the result into place."""
    with atomic_path(path) as tmp:
        writer(tmp)


def cache_dir() -> Path:
    """Where derived data (toy references) is cached: $DREAMER_CACHE or ~/.cache/dreamer."""
    root = os.environ.get("DREAMER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dreamer")
    return Path(root)
