"""Diffusion priors behind one interface (design.md section 3): base.Prior, the toy prior
(dreamer.toy.prior) and diffusers checkpoints (diffusers_prior). Nothing is imported here, so the
CLI can check --prior (priors.factory, priors.hub) before torch loads."""
