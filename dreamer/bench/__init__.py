"""Benchmarks behind `dreamer bench`: figures printed, never asserted."""
