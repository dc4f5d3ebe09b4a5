"""Rendering backends. The pure-PyTorch paths are the reference semantics."""
