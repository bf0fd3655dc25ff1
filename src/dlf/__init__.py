"""dlf: the deep-learning foundations model zoo (PyTorch + Lightning + Hydra)."""

__version__ = "0.1.0"
