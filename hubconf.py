"""torch.hub entry points for dlf's model zoo: `torch.hub.load("<this clone>", "mlp_xor", source="local")` returns the
trained model (pretrained=False: the same architecture, fresh weights). The public callables are exactly the names of
dlf.zoo.list_models(); each docstring is the model's card. Made from the registry: nothing here is typed per model."""

import sys as _sys
from pathlib import Path as _Path

_SRC = str(_Path(__file__).resolve().parent / "src")
if _SRC in _sys.path:
    _sys.path.remove(_SRC)
_sys.path.insert(0, _SRC)  # this clone's dlf, before any installed one

dependencies = ["torch", "lightning", "hydra", "safetensors", "sklearn", "mnist1d"]

from dlf import zoo as _zoo  # noqa: E402 - after sys.path names this clone's src
from dlf.zoo.render import card_markdown as _card_markdown  # noqa: E402


def _entry(_name):
    def model(pretrained=True, device="cpu"):
        return _zoo.get_model(_name, pretrained=pretrained, device=device)

    model.__name__ = model.__qualname__ = _name
    model.__doc__ = _card_markdown(_zoo.card(_name))
    return model


for _name in _zoo.list_models():
    globals()[_name] = _entry(_name)
