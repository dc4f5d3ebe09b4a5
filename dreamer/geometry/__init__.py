"""Geometry: parameters of a 3D representation plus how to query them."""
