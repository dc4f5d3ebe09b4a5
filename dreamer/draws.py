"""Random tensors drawn on the device that uses them, from the step's seeded CPU generator.

Training seeds one CPU generator per step (resume-safe: a step draws the same whatever ran
before). Drawing big tensors there and copying them over stalls a GPU every step (ray jitter alone
is about 2M floats per view in the DreamFusion recipe). On a CUDA device the draw uses a device
generator seeded by one number from the step's generator, so it stays a pure function of the
step; on the CPU the step's generator draws directly, exactly as it always did.
"""
from __future__ import annotations

import torch


def device_generator(generator: torch.Generator | None, device) -> torch.Generator | None:
    """`generator` itself when it lives on `device` (or is None); else a generator on `device`
    seeded by one draw from it."""
    device = torch.device(device)
    if generator is None or generator.device.type == device.type:
        return generator
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    return torch.Generator(device).manual_seed(seed)


def rand(shape, generator, like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) of `shape` on like's device, in like's dtype (drawn in float32)."""
    gen = device_generator(generator, like.device)
    return torch.rand(shape, generator=gen, device=like.device).to(like.dtype)


def randn(shape, generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal of `shape` on like's device, in like's dtype (drawn in float32)."""
    gen = device_generator(generator, like.device)
    return torch.randn(shape, generator=gen, device=like.device).to(like.dtype)
