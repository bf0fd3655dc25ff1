"""Measures of what a generative model learned (mode coverage, sample quality)."""
