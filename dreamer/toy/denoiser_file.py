"""Reading a toy denoiser file's metadata without torch, so a wrong file fails before anything loads.

A safetensors file starts with an 8-byte little-endian header length, then that many bytes of JSON;
our metadata is the JSON string under "__metadata__" -> "dreamer" (written by denoiser.save_denoiser).
"""
from __future__ import annotations

import json
import struct

from ..errors import UserError

FORMAT = "dreamer-toy-denoiser-1"
MAX_HEADER = 1 << 20  # our headers are a few kB; a larger length means another kind of file


def read_metadata(path) -> dict:
    """The file's dreamer metadata; ValueError naming the problem if it is not a toy denoiser file."""
    with open(path, "rb") as f:
        head = f.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        if not 0 < size <= MAX_HEADER:
            raise ValueError(f"{path} is not a safetensors file")
        try:
            header = json.loads(f.read(size))
            meta = json.loads(header.get("__metadata__", {}).get("dreamer", "{}"))
        except (ValueError, AttributeError):
            raise ValueError(f"{path} is not a safetensors file") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a toy denoiser file (no {FORMAT} metadata)")
    return meta


def check_trained_on(meta_objects: list[str], name: str) -> None:
    """UserError unless the network was trained on the catalogue object `name`."""
    if name not in meta_objects:
        raise UserError(f"the trained toy denoiser was not trained on '{name}' (it knows {', '.join(meta_objects)}); "
                        "use prior.world=exact or realistic for it")
