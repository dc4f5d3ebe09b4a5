"""The per-prompt optimization loop: render, distil the prior's score, regularize, step.

The loop sees the 3D asset only through the representation contract (dreamer.representations):
it never asks which representation it is training. Manual optimization, because guidance methods
own their gradient (the injection loss) and a step with non-finite gradients must be skipped
rather than applied.
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch

from dreamer.cameras import CameraSampler
from dreamer.errors import UserError
from dreamer.guidance import build_guidance
from dreamer.prompts import PromptProcessor
from dreamer.representations.stored import particle_extras
from dreamer.schedule import evaluate
from renderers.volume import ShadingSpec

from .scene import SceneQueries, assemble


class DivergedError(UserError):
    """Too many consecutive steps with non-finite gradients (or non-finite parameters)."""

    def __init__(self, message: str, skipped_steps: int):
        super().__init__(message)
        self.skipped_steps = skipped_steps


class TextTo3DSystem(SceneQueries, pl.LightningModule):
    def __init__(self, cfg, prior=None, restore: bool = False):
        """`restore`: a checkpoint will fill the representations (they read no previous run)."""
        super().__init__()
        self.cfg = cfg
        self.automatic_optimization = False
        # The particles (sharing one fake score; particle 0 is the asset) and the background, under
        # the names a Scene gives them, so export and evaluation load this checkpoint without Lightning.
        assemble(self, cfg, restore)
        self.sampler = CameraSampler(cfg.camera, cfg.seed)
        self.prior = prior
        # The guidance is a submodule so a fake score's weights are checkpointed with the asset.
        self.guidance = build_guidance(cfg.guidance, prior, cfg.trainer.max_steps) if prior else None
        self.prompts = PromptProcessor(prior, cfg.prompt, cfg.guidance, cfg.camera) if prior else None
        self.bad_steps = 0
        self.skipped_steps = 0
        self.last_stats: dict = {}

    # -- parameters ------------------------------------------------------------------------------

    def _groups(self) -> dict:
        """Parameter groups of the shared Adam, by name (the learning rate is optimizer.lr_<name>)."""
        groups: dict = {}
        for rep in self.particles:
            for name, params in rep.parameter_groups().items():
                groups.setdefault(name, []).extend(params)
        groups["background"] = list(self.background.parameters())
        if self.guidance is not None:
            groups["fake_score"] = list(self.guidance.parameters())
        return {k: v for k, v in groups.items() if v}

    def _lr(self, name: str, step: int) -> float:
        return float(evaluate(getattr(self.cfg.optimizer, f"lr_{name}"), step))

    def configure_optimizers(self):
        """One Adam for the shared groups, then one per separate group (a representation that resizes
        those parameters, such as densifying Gaussians, edits each with its own state)."""
        c = self.cfg.optimizer
        adam = lambda groups: torch.optim.Adam(groups, betas=tuple(c.betas), eps=c.eps)  # noqa: E731
        shared = [{"params": p, "lr": self._lr(n, 0), "name": n} for n, p in self._groups().items()]
        optimizers = [adam(shared)] if shared else []
        for rep in self.particles:
            optimizers += [adam([{"params": p, "lr": self._lr(n, 0), "name": n}])
                           for n, p in rep.separate_parameter_groups().items()]
        return optimizers if len(optimizers) > 1 else optimizers[0]

    def _optimizer_list(self) -> list:
        opts = self.optimizers()
        return list(opts) if isinstance(opts, (list, tuple)) else [opts]

    @staticmethod
    def _separate_optimizers(rep, opts: list) -> dict:
        """The raw Adams (of this step's `opts`) of a representation's separate groups, by group name."""
        names = set(rep.separate_parameter_groups())
        return {o.optimizer.param_groups[0]["name"]: o.optimizer for o in opts
                if o.optimizer.param_groups[0]["name"] in names}

    # -- one step --------------------------------------------------------------------------------

    def shading_for(self, step: int, g: torch.Generator) -> ShadingSpec:
        m = self.cfg.material
        mode = "albedo"
        if step >= m.ambient_only_steps and torch.rand(1, generator=g).item() < m.shaded_prob:
            mode = "textureless" if torch.rand(1, generator=g).item() < m.textureless_prob else "shaded"
        return ShadingSpec(mode, m.ambient_light, m.diffuse_light)

    def training_step(self, batch, batch_idx):
        step, c = self.global_step, self.cfg
        g = torch.Generator().manual_seed(c.seed * 7919 + step)
        self.guidance.update_step(step)
        opts = self._optimizer_list()
        for opt in opts:
            for group in opt.param_groups:
                group["lr"] = self._lr(group["name"], step)
        for rep in self.particles:
            rep.prepare_step(step, g)

        cams = self.sampler.sample(step)
        bg_color = torch.rand(c.geometry.color_channels, generator=g) if torch.rand(1, generator=g).item() < c.background.random_aug_prob else None
        outs = self.render(cams, self.shading_for(step, g), randomized=c.renderer.randomized, generator=g,
                           bg_color=bg_color)
        rgb = torch.cat([o["rgb"] for o in outs])
        self.guidance.attach_image_hook(rgb)
        x = self.prior.encode(rgb)
        terms = self.guidance(x, self.prompts(cams).repeat(len(outs)).to(x.device), generator=g)
        loss = evaluate(c.loss.lambda_guidance, step) * terms["loss_guidance"]
        if "loss_fake_score" in terms:
            loss = loss + evaluate(c.loss.lambda_fake_score, step) * terms["loss_fake_score"]
        loss = loss + sum(rep.regularizers(o, step) for rep, o in zip(self.particles, outs))

        for opt in opts:
            opt.zero_grad(set_to_none=True)
        for rep, o in zip(self.particles, outs):
            rep.before_backward(o)
        # A step is good only if the guidance's g, the loss and every gradient are finite. A loss
        # without a graph (nothing left to render) has no gradient to apply: also a bad step.
        finite = bool(terms["finite"]) and bool(torch.isfinite(loss)) and loss.requires_grad
        if loss.requires_grad:
            self.manual_backward(loss)
            self.guidance.after_backward()
        finite = finite and self._grads_finite()
        if finite:
            self.bad_steps = 0
        else:
            # Adam skips parameters whose grad is None: the step is counted (so global_step and
            # resume stay aligned) but changes nothing.
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            self.bad_steps += 1
            self.skipped_steps += 1
            if self.bad_steps > c.trainer.max_consecutive_bad_steps:
                raise DivergedError(
                    f"training diverged: {self.bad_steps} steps in a row had NaN/Inf gradients at step {step}; "
                    f"lower the learning rates or the guidance scale and resume from the last checkpoint",
                    self.skipped_steps)
        # Lightning counts every wrapped optimizer's step as a global step: only the first one is
        # stepped through its wrapper, so one training step stays one global step.
        opts[0].step()
        for opt in opts[1:]:
            opt.optimizer.step()
        if finite and not self._params_finite():
            raise DivergedError(f"training diverged: the parameters became NaN/Inf at step {step}; lower the "
                                f"learning rates and resume from the last checkpoint", self.skipped_steps)
        if finite:
            for rep, o in zip(self.particles, outs):
                rep.after_step(step, o, self._separate_optimizers(rep, opts))
        self.last_stats = {"loss": float(loss.detach()), "t": float(terms["t"]),
                           "grad_norm": float(terms["grad_norm"]) if finite else float("nan"), "nfe": float(terms["nfe"]),
                           "skipped": self.skipped_steps}
        if "loss_fake_score" in terms:
            self.last_stats["loss_fake_score"] = float(terms["loss_fake_score"].detach())
        self.last_stats.update(self.representation.step_stats())
        return loss.detach()

    def _grads_finite(self) -> bool:
        return all_finite([p.grad for p in self.parameters() if p.grad is not None])

    def _params_finite(self) -> bool:
        return all_finite([p for p in self.parameters() if p.requires_grad])

    # -- checkpoint extras -------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint):
        checkpoint["dreamer"] = {"skipped_steps": self.skipped_steps, "bad_steps": self.bad_steps,
                                 "particles": [rep.checkpoint_extras() for rep in self.particles]}

    def on_load_checkpoint(self, checkpoint):
        extra = checkpoint.get("dreamer", {})
        self.skipped_steps = extra.get("skipped_steps", 0)
        self.bad_steps = extra.get("bad_steps", 0)
        for rep, extras in zip(self.particles, particle_extras(extra)):
            rep.load_checkpoint_extras(extras)


def all_finite(tensors: list) -> bool:
    """Whether every tensor is free of NaN/Inf, with one device sync for all of them (a LoRA fake
    score has hundreds of tensors: a sync per tensor stalls a GPU every step)."""
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())
