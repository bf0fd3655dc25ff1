"""Metrics: accuracy (every classifier), what a generative model learned (mode coverage, sample quality), XOR's margin."""
