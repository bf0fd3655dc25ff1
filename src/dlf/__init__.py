"""dlf: the deep-learning foundations model zoo (PyTorch + Lightning + Hydra)."""

import warnings

__version__ = "0.1.0"

# Lightning (<= 2.6) builds torch.utils._pytree.LeafSpec objects, which torch >= 2.10 deprecates with a FutureWarning
# printed on every run; nothing a dlf user can change. Only this message is hidden; remove when Lightning stops.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)


def __getattr__(name: str):
    """`dlf.load(source, device="cpu")`: a trained model from a run dir, a checkpoint file or a zoo name
    (dlf.run.checkpoint.load), and `dlf.zoo`. Imported on first use, so that importing dlf's foundation stays light."""
    if name == "load":
        from dlf.run.checkpoint import load

        return load
    if name == "zoo":  # dlf.zoo: the registry of trained reference models (list_models, get_model, card)
        import dlf.zoo

        return dlf.zoo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
