"""Shared data machinery: the facts a dataset states, and in-memory tensors served in batches by slicing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import lightning as L
import torch

from dlf.errors import require


@dataclass
class DataFacts:
    """What a model needs to know about its data. Models read these; users never type them.

    kind: "vector" (x has shape [N, in_features]), "sequence" ([N, T, in_features]), "image" ([N, C, H, W]),
          "tokens" ([N, T] integer ids) or "points" (unlabelled samples for generative models).
    target: "binary" (y in {0,1}, shape [N, 1]), "classes" (y int64 in 0..num_classes-1), "regression" (float),
            "next_token" (language modelling) or "none".
    """

    name: str
    kind: str
    target: str
    input_shape: tuple[int, ...] = ()   # the shape of one sample's x, e.g. (2,), (40,), (1, 8, 8)
    in_features: int | None = None      # features per vector (kind=vector) or per time step (kind=sequence)
    num_classes: int | None = None
    seq_len: int | None = None
    image_shape: tuple[int, int, int] | None = None
    vocab: list[str] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def flat_features(self) -> int:
        """Number of inputs once a sample is flattened (what an MLP reads)."""
        n = 1
        for d in self.input_shape:
            n *= int(d)
        return n

    def as_dict(self) -> dict:
        return asdict(self)


class TensorLoader:
    """Serves a tuple of equal-length tensors in mini-batches by slicing (no per-item Python work).

    The order of each epoch is a permutation drawn from `seed + epoch`, so it does not depend on any global RNG and a
    resumed run sees the same batches. `repeats` serves the whole set that many times per epoch (full-batch XOR).
    """

    def __init__(self, tensors, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                 seed: int = 0, repeats: int = 1):
        require(batch_size is not None and int(batch_size) > 0,
                f"data.batch_size={batch_size} must be a positive integer: set e.g. data.batch_size=64")
        n = len(tensors[0])
        require(all(len(t) == n for t in tensors), "all tensors of a dataset must have the same length")
        self.tensors = tuple(tensors)
        self.n = n
        self.batch_size = min(int(batch_size), n) if n > 0 else int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.repeats = int(repeats)
        self.epoch = 0

    def _batches_per_pass(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __len__(self) -> int:
        return self._batches_per_pass() * self.repeats

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        per_pass = self._batches_per_pass()
        for _ in range(self.repeats):
            if self.shuffle:
                order = torch.randperm(self.n, generator=gen)
                data = tuple(t[order] for t in self.tensors)
            else:
                data = self.tensors
            for b in range(per_pass):
                s = slice(b * self.batch_size, (b + 1) * self.batch_size)
                yield tuple(t[s] for t in data)

    # Lightning stores these in checkpoints for stateful loaders, so a resumed run continues the same epoch order.
    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state.get("epoch", 0))


class InMemoryDataModule(L.LightningDataModule):
    """A dataset small enough to live as tensors: subclasses fill self.train/val/test (tuples of tensors) and facts."""

    def __init__(self, batch_size: int = 64, seed: int = 0, eval_batch_size: int | None = None):
        super().__init__()
        require(isinstance(batch_size, int) and batch_size > 0,
                f"data.batch_size={batch_size!r} must be a positive integer: set e.g. data.batch_size=64")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or max(batch_size, 1024)
        self.seed = seed
        self.train: tuple[torch.Tensor, ...] = ()
        self.val: tuple[torch.Tensor, ...] = ()
        self.test: tuple[torch.Tensor, ...] = ()
        self.facts: DataFacts | None = None
        self._train_loader: TensorLoader | None = None

    # Subclasses build their tensors (and facts) here; it is called once, before the model is built.
    def build(self) -> None:
        raise NotImplementedError

    def prepare(self) -> DataFacts:
        if self.facts is None:
            self.build()
        return self.facts

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def train_dataloader(self):
        if self._train_loader is None:
            self._train_loader = TensorLoader(self.train, self.batch_size, shuffle=True, seed=self.seed)
        return self._train_loader

    def val_dataloader(self):
        return TensorLoader(self.val, self.eval_batch_size)

    def test_dataloader(self):
        return TensorLoader(self.test, self.eval_batch_size)

    def state_dict(self) -> dict:
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader else {}

    def load_state_dict(self, state: dict) -> None:
        if "train_loader" in state:
            self.train_dataloader().load_state_dict(state["train_loader"])
