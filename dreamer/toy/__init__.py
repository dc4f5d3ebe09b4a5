"""The toy world: procedural objects, their exact renders, and a diffusion prior that is the exact
score of those renders (design.md section 5)."""
