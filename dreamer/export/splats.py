"""A Gaussian run's splats for 3DGS tools and web viewers: the Inria PLY layout and the .splat format.

PLY: `x y z nx ny nz f_dc_0..2 f_rest_0..44 opacity scale_0..2 rot_0..3`, float32 little-endian,
the full 62-property layout of the original 3DGS code (tools that read it expect every property;
gsplat's writer leaves out the normals and the bands a lower-degree run lacks), zeros where the run
has no such data, f_rest channel-major, opacity a logit, scales logs, rot (w, x, y, z) of unit length.
.splat: 32 bytes a splat (position, linear scale, RGBA and rotation as bytes), written by gsplat.
Both take the exported mesh's placement (height and pivot), so splats and mesh line up in a scene.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..atomic import write_bytes
from .placement import Placement

REST = 45  # f_rest coefficients of degree 3: 15 bases x 3 channels
PROPERTIES = (["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(3)]
              + [f"f_rest_{i}" for i in range(REST)] + ["opacity"] + [f"scale_{i}" for i in range(3)]
              + [f"rot_{i}" for i in range(4)])


def placed_splats(splats: dict, where: Placement | None) -> dict:
    """Raw splat parameters (gsplat's forms) moved to the export's placement, quaternions normalized."""
    s = {k: v.detach().cpu().float() for k, v in splats.items()}
    if where is not None:
        s["means"] = s["means"] * where.scale + torch.tensor(where.offset, dtype=torch.float32)
        s["scales"] = s["scales"] + math.log(where.scale)
    s["quats"] = torch.nn.functional.normalize(s["quats"], dim=-1)
    return s


def splats_ply_bytes(s: dict) -> bytes:
    n, bases = len(s["means"]), s["shN"].shape[1]
    if bases > REST // 3:
        raise ValueError(f"spherical harmonics above degree 3 have no place in the 3DGS layout ({bases} bases)")
    rest = torch.zeros(n, REST // 3, 3)
    rest[:, :bases] = s["shN"]  # missing bands stay zero in every channel
    columns = [s["means"], torch.zeros(n, 3), s["sh0"].reshape(n, 3), rest.transpose(1, 2).reshape(n, REST),
               s["opacities"].reshape(n, 1), s["scales"], s["quats"]]
    data = torch.cat(columns, 1).numpy().astype("<f4")
    header = "".join(["ply\nformat binary_little_endian 1.0\n", f"element vertex {n}\n"]
                     + [f"property float {p}\n" for p in PROPERTIES] + ["end_header\n"])
    return header.encode("ascii") + data.tobytes()


def write_splats_ply(splats: dict, path, where: Placement | None = None) -> None:
    write_bytes(path, splats_ply_bytes(placed_splats(splats, where)))


def write_splat(splats: dict, path, where: Placement | None = None) -> None:
    from gsplat import export_splats  # start-up: gsplat is imported only by Gaussian runs
    s = placed_splats(splats, where)
    write_bytes(path, export_splats(s["means"], s["scales"], s["quats"], s["opacities"], s["sh0"], s["shN"],
                                    format="splat"))


def read_splat(path) -> dict:
    """A .splat file decoded: positions (N, 3), linear scales (N, 3), rgba (N, 4) and rotations (N, 4)
    in [0, 255] bytes, as web viewers read it."""
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 32)
    floats = raw[:, :24].copy().view("<f4")
    return {"means": floats[:, :3], "scales": floats[:, 3:6], "rgba": raw[:, 24:28], "rot": raw[:, 28:32]}
