"""LightningDataModules. Each one states its facts (DataFacts) so that models never ask a user for a layer size."""

from dlf.data.base import DataFacts, InMemoryDataModule, TensorLoader

__all__ = ["DataFacts", "InMemoryDataModule", "TensorLoader"]
