"""Growing and pruning Gaussians during training with gsplat's DefaultStrategy.

gsplat's strategy owns the rules (duplicate small Gaussians and split large ones where the
screen-space gradient is large; prune transparent and oversized ones) and edits the parameters
and their Adam states in place. Two things are ours: a cap on the count (growth pauses there;
CPU time follows the count), and the opacity reset, because gsplat 1.5.3 tests its reset period
with a bitwise `&` that is never true.
"""
from __future__ import annotations

import math

import torch
from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import reset_opa


class Densifier:
    def __init__(self, cfg):
        d = cfg.geometry.gaussians.densify
        self.cfg = d
        self.strategy = DefaultStrategy(
            prune_opa=d.prune_opa, grow_grad2d=d.grow_grad2d, grow_scale3d=d.grow_scale3d,
            prune_scale3d=d.prune_scale3d, refine_start_iter=d.refine_start_iter,
            refine_stop_iter=d.refine_stop_iter, refine_every=d.refine_every,
            # gsplat 1.5.3 reads reset_every twice: its own reset (never fires: see the module
            # docstring; ours is below) and "prune oversized Gaussians only after step reset_every".
            # The second must stay alive: oversized ones are pruned from our first reset on, or
            # from the first refinement when there is no reset.
            reset_every=d.reset_every or d.refine_start_iter, verbose=False)
        # 3D thresholds are relative to the scene scale: the object's bounding radius here
        self.state = self.strategy.initialize_state(scene_scale=cfg.geometry.radius)
        self.checked = False
        self.restored = False  # a checkpoint's state waits for the next step to learn the device

    def before_backward(self, meta: dict) -> None:
        if self.cfg.enabled:
            meta["means2d"].retain_grad()  # what DefaultStrategy.step_pre_backward does

    def restore(self, state: dict) -> None:
        """A checkpoint's state. Lightning loads checkpoints to the CPU, so its tensors move to the
        Gaussians' device and dtype at the next step (gsplat's index_add_ cannot mix devices)."""
        self.state, self.restored = state, True

    def _follow(self, field) -> None:
        self.restored = False
        means = field.splats["means"]
        for key, value in self.state.items():
            if torch.is_tensor(value) and (value.device != means.device or
                                           (value.is_floating_point() and value.dtype != means.dtype)):
                self.state[key] = value.to(means.device, means.dtype if value.is_floating_point() else value.dtype)

    def after_step(self, field, optimizers: dict, step: int, meta: dict) -> None:
        """After the optimizer step; `meta` is the training render's (its means2d holds the grad)."""
        if not self.cfg.enabled or meta["means2d"].grad is None:
            return
        if self.restored:
            self._follow(field)
        if not self.checked:
            self.strategy.check_sanity(field.splats, optimizers)
            self.checked = True
        self.strategy.grow_grad2d = self._grow_threshold(field.count)
        self.strategy.step_post_backward(field.splats, optimizers, self.state, step, meta, packed=False)
        r = self.cfg.reset_every
        if r and 0 < step < self.cfg.refine_stop_iter and step % r == 0:
            reset_opa(field.splats, optimizers, self.state, value=self.cfg.prune_opa * 2.0)

    def _grow_threshold(self, count: int) -> float:
        """gsplat's absolute threshold, or (grow_fraction > 0) the level that the largest
        grow_fraction of the mean screen-space gradients reach: gradient scales differ by orders
        of magnitude between priors and methods, a share of the Gaussians does not."""
        if count >= self.cfg.max_gaussians:
            return math.inf
        grad, seen = self.state.get("grad2d"), self.state.get("count")
        if self.cfg.grow_fraction <= 0 or grad is None or not (seen > 0).any():
            return self.cfg.grow_grad2d
        mean = grad[seen > 0] / seen[seen > 0]
        return float(torch.quantile(mean.float(), 1.0 - self.cfg.grow_fraction))
