"""LightningModules: how to train (what a step is, what is logged). The nets they are given say how to compute."""
