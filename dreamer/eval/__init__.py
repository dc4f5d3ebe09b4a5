"""Metrics against the toy world's ground truth."""
