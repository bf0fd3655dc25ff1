"""Where the zoo's weights and cards are, and their checks: a shipped entry has weights/NAME.json (its card, written by
`dlf-zoo train NAME`) and weights/NAME.ckpt, whose sha256 the card records and every load checks. Imports nothing but
the registry: dlf.load's zoo-name hook (dlf.run.checkpoint.zoo_checkpoint) imports this module."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dlf.errors import DlfError
from dlf.zoo.entries import ENTRIES, Entry

WEIGHTS = Path(__file__).resolve().parent / "weights"


def store_dir() -> Path:
    """The folder of the shipped weights and cards (WEIGHTS; a test points it at a copy)."""
    return WEIGHTS


def list_models() -> list[str]:
    """The registry's names, in the registry's order."""
    return list(ENTRIES)


def entry(name: str) -> Entry:
    if name not in ENTRIES:
        raise DlfError(f"dlf.zoo has no model {name!r}: pick one of {', '.join(ENTRIES)} (dlf-zoo list)")
    return ENTRIES[name]


def shipped(name: str) -> bool:
    """Whether the entry's card is in the package (the weights file is then required: a missing one is an error)."""
    return (store_dir() / f"{entry(name).name}.json").is_file()


def card(name: str) -> dict:
    """The entry's card: the one `dlf-zoo train NAME` wrote, or, for an entry not trained yet, what the registry knows
    (its task, data and command) with shipped: false."""
    e = entry(name)
    if shipped(name):
        return json.loads((store_dir() / f"{name}.json").read_text())
    return {"name": name, "task": e.task, "data": e.data, "command": e.command, "metric": e.metric, "shipped": False,
            "preprocessing": e.preprocessing, "licence": {"weights": "MIT (dlf's)", "data": e.data_licence}}


def not_shipped(name: str) -> DlfError:
    return DlfError(f"dlf.zoo: the weights of {name} are not shipped yet: train them with `dlf-zoo train {name}` "
                    f"(runs `{entry(name).command}`), or get_model({name!r}, pretrained=False) for fresh weights")


def weights_path(name: str) -> Path:
    """The entry's checkpoint file, its sha256 checked against the card: a missing or damaged file is one line."""
    e = entry(name)
    if not shipped(name):
        raise not_shipped(name)
    path, want = store_dir() / f"{e.name}.ckpt", card(name)["sha256"]
    if not path.is_file():
        raise DlfError(f"dlf.zoo: {name}'s weights file {path} is missing: reinstall dlf, or rebuild it with "
                       f"`dlf-zoo train {name}`")
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != want:
        raise DlfError(f"dlf.zoo: {name}'s weights file {path} is damaged (sha256 {got[:12]}..., its card says "
                       f"{want[:12]}...): reinstall dlf, or rebuild it with `dlf-zoo train {name}`")
    return path
