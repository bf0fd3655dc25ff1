"""dlf's model zoo: reference models by name, with their weights (inside the package), their card and their
preprocessing. `list_models()`, `get_model(name, pretrained=True)`, `card(name)`, `test_split(name)`; `dlf-zoo` is
the command line (dlf.zoo.cli). `get_model` never reads a dataset: the checkpoint carries the net's config and the
data's facts (dlf.run.build's hyper-parameters), so `model.predict(raw)` takes the data's own units.

A shipped entry has dlf/zoo/weights/NAME.json (its card, written by `dlf-zoo train NAME`) and NAME.ckpt (state_dict
and hyper-parameters only: torch.load(weights_only=True)), whose sha256 the card records and every load checks."""

from __future__ import annotations

from dlf.errors import DlfError
from dlf.zoo.store import card, entry, list_models, shipped, weights_path  # noqa: F401 - the registry's API

__all__ = ["list_models", "get_model", "card", "test_split", "shipped", "weights_path"]


def get_model(name: str, pretrained: bool = True, device: str = "cpu"):
    """The entry's trained system in eval mode on `device` (pretrained=True), or the same architecture with fresh
    weights (pretrained=False). `model.predict(raw)` takes the data's own units (card(name)['preprocessing'])."""
    from dlf.systems.base import System

    entry(name)
    if pretrained:
        return System.load_from_checkpoint(weights_path(name), map_location=device)
    return fresh(name).to(device).eval()


def fresh(name: str):
    """The entry's system with freshly initialised weights: built from the shipped checkpoint's hyper-parameters (no
    data read), or, for an entry not trained yet, from its command's config and its data's facts."""
    from dlf.systems import saved

    if shipped(name):
        path = weights_path(name)
        hparams = dict(saved.peek(path)["hyper_parameters"])
        from dlf.systems.base import System

        target = saved.system_class(hparams.get("_target_"), System, path)
        system = target(**saved.constructor_args(hparams, path))
        system.save_hyperparameters(hparams, logger=False)
        return system
    from dlf.zoo.make import composed_system

    return composed_system(name)


def test_split(name: str):
    """The entry's test examples as indices into its dataset, in the order its source gives them (numpy int64):
    load_digits() for cnn_digits, make_dataset()'s x_test for the MNIST-1D entries, torchvision's test set for
    Fashion-MNIST, the corpus's characters for lstm_text, the generated test set for lstm_adding, the four points for
    mlp_xor. A GAN has none (its scores are of its own samples)."""
    import numpy as np

    e = entry(name)
    if e.kind == "gan":
        raise DlfError(f"dlf.zoo: {name} is a GAN: it has no test split (its scores are of its samples, "
                       "dlf.zoo.get_model(name).sample(n, seed=...))")
    if name == "cnn_digits":
        from sklearn.datasets import load_digits

        from dlf.data.digits import DigitsDataModule

        return np.asarray(DigitsDataModule().split(load_digits().target)[2], dtype=np.int64)
    data = card(name).get("data_config") or {}  # a shipped entry: the sizes its run used; else the configs' defaults
    if name == "lstm_text":
        n = data.get("corpus_chars", 200_000)  # the generated corpus; the last 10% (reading order) are the test text
        return np.arange(int(n * 0.9), n, dtype=np.int64)
    if name.endswith("mnist1d"):  # make_dataset's x_test: the last 20% of num_samples
        return np.arange(data.get("num_samples", 5000) // 5, dtype=np.int64)
    sizes = {"mlp_xor": 4, "cnn_fashion": 10_000, "lstm_adding": data.get("n_test", 1_000)}
    return np.arange(sizes[name], dtype=np.int64)
