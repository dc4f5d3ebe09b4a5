"""Scalar schedules: any number in a recipe may be a constant or a piecewise-linear ramp.

Format (threestudio's convention, steps only):
  x                          a constant
  [v0, v1, s1]               ramp from v0 at step 0 to v1 at step s1
  [s0, v0, v1, s1]           ramp from v0 at step s0 to v1 at step s1, clamped on both sides
  [s0, v0, v1, s1, v2, s2, ...]  further segments continue from the previous end point
"""
from __future__ import annotations

from numbers import Real
from typing import Any, Sequence

from .errors import UserError


def is_number(x: Any) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def check_schedule(value: Any, where: str) -> None:
    """Raise UserError unless `value` is a number or a well-formed schedule list."""
    if value is None or is_number(value):
        return
    if isinstance(value, (list, tuple)) and all(is_number(v) for v in value):
        n = len(value)
        if n == 3 or (n >= 4 and (n - 4) % 2 == 0):
            steps = knots(list(value))[0]
            if all(b >= a for a, b in zip(steps, steps[1:])):
                return
            raise UserError(f"{where}: schedule steps must not decrease, got {list(value)}")
    raise UserError(
        f"{where}: expected a number or a schedule [start_step, start_value, end_value, end_step], "
        f"got {value!r}"
    )


def knots(value: Sequence[float]) -> tuple[list[float], list[float]]:
    v = list(value)
    if len(v) == 3:
        v = [0] + v
    steps, vals = [v[0], v[3]], [v[1], v[2]]
    for i in range(4, len(v), 2):
        vals.append(v[i])
        steps.append(v[i + 1])
    return steps, vals


def evaluate(value: Any, step: int) -> Any:
    """The value of a constant or schedule at `step` (None stays None)."""
    if value is None or is_number(value):
        return value
    steps, vals = knots(value)
    if step <= steps[0]:
        return float(vals[0])
    for (s0, s1), (v0, v1) in zip(zip(steps, steps[1:]), zip(vals, vals[1:])):
        if step <= s1:
            frac = (step - s0) / max(s1 - s0, 1e-12)
            return float(v0 + frac * (v1 - v0))
    return float(vals[-1])
