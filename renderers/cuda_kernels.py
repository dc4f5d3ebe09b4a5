"""Whether gsplat's or nerfacc's CUDA kernels can run here, building them first if need be.

Both packages compile their kernels on first use with the CUDA toolkit (minutes, then cached on
disk). Asked here, before training, the build runs under a message on stderr instead of silently
inside step 0; a failed build (no nvcc, a compiler error: whatever it raises) becomes a reason
string that the renderers turn into a one-line error, or a fallback under backend=auto.
"""
from __future__ import annotations

import contextlib
import importlib
import sys

from dreamer.yamldata import first_line

_reasons: dict[str, str | None] = {}


def kernels_missing(package: str, say=None) -> str | None:
    """Why `package`'s CUDA kernels cannot run here (None: they are ready). Builds them once per
    process; `say` gets a line before a build may start."""
    if package in _reasons:
        return _reasons[package]
    if say is not None:
        say(f"preparing {package}'s CUDA kernels (the first build takes minutes; later runs use the cache)")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # their build notices are not our output
            backend = importlib.import_module(f"{package}.cuda._backend")
        reason = None if getattr(backend, "_C", None) is not None else "no CUDA toolkit (nvcc) was found to build them"
    except Exception as exc:  # noqa: BLE001 - a failed build raises whatever its compiler step raised
        reason = f"their build failed ({type(exc).__name__}: {first_line(exc)})"
    _reasons[package] = reason
    return reason
