"""Export: density field -> mesh -> UVs -> baked texture -> GLB / OBJ, and turntable videos."""
