"""Shared data machinery: the facts a dataset states, and in-memory tensors served in batches by slicing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import lightning as L
import torch

from dlf.errors import DlfError, check_batch_size, require
from dlf.lightning_internals import fit_position as trainer_fit_position


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
    # How a sample in the data's own units becomes the model's input (`encode`): divided by raw_scale (digits' 0-16:
    # 16, image bytes: 255), then, for images with extra["mean"] / extra["std"], standardised per channel
    raw_scale: float | None = None

    @property
    def flat_features(self) -> int:
        """Number of inputs once a sample is flattened (what an MLP reads)."""
        n = 1
        for d in self.input_shape:
            n *= int(d)
        return n

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DataFacts:
        """The facts from `as_dict`'s plain types (a checkpoint's), shapes as tuples; keys this dlf does not know are
        left out."""
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("input_shape", "image_shape"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    @property
    def raw_shape(self) -> tuple[int, ...]:
        """One sample as the data gives it: an image [H, W] (one channel) or [H, W, C], else input_shape."""
        if self.kind == "image" and self.image_shape:
            c, h, w = self.image_shape
            return (h, w) if c == 1 else (h, w, c)
        return tuple(self.input_shape)

    def encode(self, raw) -> tuple[torch.Tensor, bool]:
        """Samples in the data's own units -> the model's inputs, by the transform the data module applies itself,
        and whether `raw` was one sample (True) or a batch. Images: raw [H, W] / [H, W, C] (or the model's [C, H, W]),
        one or a batch; text: a string or a list of equal-length strings; sequences of T steps of F features: any T."""
        if self.kind == "tokens":
            return self._encode_text(raw)
        x = torch.as_tensor(raw).to(torch.float32)
        x, single, shape = self._batch(x)
        if self.kind == "image" and shape == self.raw_shape:  # [N, H, W] -> [N, 1, H, W]; [N, H, W, C] -> [N, C, H, W]
            x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        if self.raw_scale:
            x = x / self.raw_scale
        if self.kind == "image" and "mean" in self.extra and "std" in self.extra:
            mean = torch.tensor(self.extra["mean"], dtype=torch.float32).view(1, -1, 1, 1)
            std = torch.tensor(self.extra["std"], dtype=torch.float32).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x, single

    def _batch(self, x: torch.Tensor) -> tuple[torch.Tensor, bool, tuple]:
        """x as a batch [N, *shape], whether it was one sample, and which of the accepted sample shapes it has."""
        shapes = list(dict.fromkeys([self.raw_shape, tuple(self.input_shape)]))
        for shape in shapes:
            if tuple(x.shape) == shape:
                return x.unsqueeze(0), True, shape
            if tuple(x.shape[1:]) == shape:
                return x, False, shape
        if self.kind == "sequence" and len(self.input_shape) == 2 and x.dim() in (2, 3) \
                and x.shape[-1] == self.input_shape[1]:  # a recurrent net reads sequences of any length T
            return (x.unsqueeze(0), True, shapes[0]) if x.dim() == 2 else (x, False, shapes[0])
        want = " or ".join("[" + ", ".join(map(str, s)) + "]" for s in shapes)
        raise DlfError(f"inputs of shape {list(x.shape)} do not fit data={self.name}: give one sample {want}, or a "
                       f"batch [N, ...] of them, in the data's own units")

    def _encode_text(self, raw) -> tuple[torch.Tensor, bool]:
        texts = [raw] if isinstance(raw, str) else list(raw)
        index = {c: i for i, c in enumerate(self.vocab or [])}
        unknown = sorted({c for t in texts for c in t if c not in index})
        require(not unknown, f"the prompt has characters the model never saw: {''.join(unknown)!r}; "
                             f"use only these: {''.join(self.vocab or [])!r}")
        require(texts and all(texts) and len({len(t) for t in texts}) == 1,
                "give a non-empty prompt, or a list of non-empty prompts of one length")
        return torch.tensor([[index[c] for c in t] for t in texts], dtype=torch.int64), isinstance(raw, str)


class TensorLoader:
    """Serves a tuple of equal-length tensors in mini-batches by slicing (no per-item Python work).

    The order of each epoch is a permutation drawn from `seed + epoch`, so it does not depend on any global RNG and a
    resumed run sees the same batches. `repeats` serves the whole set that many times per epoch (full-batch XOR).

    Many processes (`rank` of `world_size`): each rank serves a disjoint share of the epoch's order, strided,
    share_r = order[r::W] (what torch's DistributedSampler does). Strided, not blocks, because then the union of the
    ranks' k-th batches is exactly the k-th batch of one process with batch W*B: order[kWB:(k+1)WB]; with DDP's
    gradient mean over ranks, W processes of batch B take the same steps as one process of batch W*B (the
    equivalence test checks it). `equal_shares=True` (training) gives every rank floor(n/W) samples, dropping the
    n mod W < W samples at the end of the epoch's order (a different few each shuffled epoch) so that every rank runs
    the same number of steps, which DDP needs. `equal_shares=False` (validation, test) keeps all n: shares differ by
    at most one sample and no sample is padded in twice (DistributedSampler would pad by repeating samples), so
    metrics summed over ranks count every sample exactly once.
    """

    def __init__(self, tensors, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                 seed: int = 0, repeats: int = 1, rank: int = 0, world_size: int = 1, equal_shares: bool = False):
        n = len(tensors[0])
        require(all(len(t) == n for t in tensors), "all tensors of a dataset must have the same length")
        require(0 <= rank < world_size, f"rank {rank} is not in 0..{world_size - 1}")
        require(n == 0 or n >= world_size, f"a split of {n} samples cannot give each of {world_size} processes one: "
                "use fewer processes (trainer.devices x trainer.num_nodes) or more data")
        self.tensors = tuple(tensors)
        self.n = n
        self.rank, self.world_size, self.equal_shares = int(rank), int(world_size), bool(equal_shares)
        # this rank's share of the epoch's order: positions rank, rank + W, ... (< m*W with equal shares)
        self.share = n // world_size if equal_shares else len(range(rank, n, world_size))
        self.batch_size = min(int(batch_size), self.share) if self.share > 0 else int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.repeats = int(repeats)
        self.epoch = 0        # the epoch whose order the next pass draws
        self.skip = 0         # batches of that pass already trained on before a resume
        # Set by a data module: () -> (epoch, batches trained this epoch) from the Trainer's own progress counters,
        # which are exact at checkpoint time (Lightning prefetches a batch, so counting yields would be off by one).
        self.position = None
        self._pass: list[int] | None = None  # [epoch, batches yielded] of the pass in progress

    def _batches_per_pass(self) -> int:
        if self.drop_last:
            return self.share // self.batch_size
        return -(-self.share // self.batch_size)

    def __len__(self) -> int:
        return self._batches_per_pass() * self.repeats

    def __iter__(self):
        epoch, skip = self.epoch, self.skip
        self.epoch, self.skip = epoch + 1, 0
        self._pass = [epoch, skip]
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        per_pass = self._batches_per_pass()
        i = 0
        sharded = self.world_size > 1
        for _ in range(self.repeats):
            if self.shuffle:
                order = torch.randperm(self.n, generator=gen)  # drawn even for skipped passes: same order after
            elif sharded:
                order = torch.arange(self.n)
            if sharded:  # this rank's share: order[r::W], cut to `share` samples
                order = order[self.rank::self.world_size][:self.share]
            for b in range(per_pass):
                i += 1
                if i <= skip:  # resumed mid-epoch: these batches were trained on before the interruption
                    continue
                s = slice(b * self.batch_size, (b + 1) * self.batch_size)
                self._pass[1] = i
                if self.shuffle or sharded:
                    idx = order[s]
                    yield tuple(t[idx] for t in self.tensors)
                else:
                    yield tuple(t[s] for t in self.tensors)

    # Lightning stores these in checkpoints for stateful loaders (and the data module's state_dict holds them too),
    # so a resumed run continues the same epoch order at the right batch: {"epoch": e, "batch": batches done in e}.
    def state_dict(self) -> dict:
        if self.position is not None and (pos := self.position()) is not None:
            epoch, done = pos
        elif self._pass is not None:
            epoch, done = self._pass
        else:
            epoch, done = self.epoch, self.skip
        return {"epoch": int(epoch), "batch": int(done)}

    def load_state_dict(self, state: dict) -> None:
        epoch, done = int(state.get("epoch", 0)), state.get("batch")
        if done is None:  # older format: {"epoch": next epoch}
            self.epoch, self.skip, self._pass = epoch, 0, None
            return
        if int(done) >= len(self):
            epoch, done = epoch + 1, 0
        self.epoch, self.skip, self._pass = epoch, int(done), None


class InMemoryDataModule(L.LightningDataModule):
    """A dataset small enough to live as tensors: subclasses fill self.train/val/test (tuples of tensors) and facts."""

    def __init__(self, batch_size: int = 64, seed: int = 0, eval_batch_size: int | None = None):
        super().__init__()
        check_batch_size(batch_size)
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

    def shard(self) -> dict:
        """This process's place among the Trainer's processes: {"rank": r, "world_size": W} (0 of 1 without one)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": int(trainer.global_rank), "world_size": int(trainer.world_size)}

    def train_loader(self, **kwargs) -> TensorLoader:
        """The (cached) training loader, this rank's equal share; rebuilt, keeping its position, if the ranks changed
        since it was made (a state loaded before the Trainer was attached)."""
        where = self.shard()
        old = self._train_loader
        if old is None or (old.rank, old.world_size) != (where["rank"], where["world_size"]):
            self._train_loader = TensorLoader(self.train, equal_shares=True, **where, **kwargs)
            if old is not None:
                self._train_loader.epoch, self._train_loader.skip = old.epoch, old.skip
        self._train_loader.position = self.fit_position
        return self._train_loader

    def train_dataloader(self):
        return self.train_loader(batch_size=self.batch_size, shuffle=True, seed=self.seed)

    def fit_position(self) -> tuple[int, int] | None:
        """(epoch, batches trained in it) from the Trainer while fitting: exact at every checkpoint save (see
        dlf.lightning_internals.fit_position). A training loader's `position`; RunGuard also gives it to the loaders
        of data modules that override train_dataloader()."""
        return trainer_fit_position(getattr(self, "trainer", None))

    def val_dataloader(self):  # every sample exactly once over all ranks (shares differ by at most one)
        return TensorLoader(self.val, self.eval_batch_size, **self.shard())

    def test_dataloader(self):
        return TensorLoader(self.test, self.eval_batch_size, **self.shard())

    def state_dict(self) -> dict:
        if self._train_loader is None:
            return {}
        if self._train_loader.position is None:
            self._train_loader.position = self.fit_position
        return {"train_loader": self._train_loader.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "train_loader" in state:
            self.train_dataloader().load_state_dict(state["train_loader"])
