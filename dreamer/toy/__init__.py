"""The toy world: procedural objects, their exact renders, and a diffusion prior over those renders:
the mixture's exact score, a realistic variant of it, or a small UNet trained on them (design.md
section 5)."""
