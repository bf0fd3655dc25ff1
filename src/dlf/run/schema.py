"""Typed config schemas: the types of the keys that matter, declared once as dataclasses and registered in Hydra's
ConfigStore (group `schema`), so that Hydra checks them while it composes the config: `seed=abc`, `optimizer.lr=abc`,
`data.batch_size=1.5` or `trainer.max_epochs=ten` fail before any dlf code runs, and `dlf.run.cli.explain` turns Hydra's
error into dlf's one line (`dlf.errors.message`). The config files pull them in with their defaults list, e.g. optimizer/sgd.yaml:
`defaults: [/schema@_here_: optimizer, _self_]`.

Each schema is registered as a plain (open) node whose leaves are typed, not as a structured config: a structured node
refuses `~key` deletions and keys its dataclass does not name, and dlf takes every Hydra override form (`~optimizer.
weight_decay`, `+trainer.benchmark=true`). Unknown keys are still refused by Hydra's struct mode, as for any config.
Ranges and rules across fields are checked after composition, in dlf.run.checks, with the same words (`checks.RULES`).

Nothing here imports torch.
"""

import dataclasses
import typing

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig
from omegaconf.nodes import BooleanNode, FloatNode, IntegerNode, StringNode


@dataclasses.dataclass
class Run:
    """Top-level keys (configs/train.yaml)."""

    seed: int = MISSING
    figures: bool = MISSING
    report: bool = MISSING


@dataclasses.dataclass
class Optimizer:
    """Every optimizer file (configs/optimizer/*.yaml); its other keys differ by optimizer and stay untyped."""

    _target_: str = MISSING
    _partial_: bool = True
    lr: float = MISSING


@dataclasses.dataclass
class Data:
    """Every data file that serves batches (configs/data/*.yaml but xor, which serves one full batch)."""

    _target_: str = MISSING
    batch_size: int = MISSING


@dataclasses.dataclass
class Trainer:
    """How long a run is and how often it validates and logs (configs/trainer/default.yaml; null: Lightning's default)."""

    _target_: str = MISSING
    max_epochs: typing.Optional[int] = MISSING
    max_steps: typing.Optional[int] = MISSING
    min_epochs: typing.Optional[int] = MISSING
    check_val_every_n_epoch: typing.Optional[int] = MISSING
    log_every_n_steps: typing.Optional[int] = MISSING


SCHEMAS = {"run": Run, "optimizer": Optimizer, "data": Data, "trainer": Trainer}

_NODES = {int: IntegerNode, float: FloatNode, bool: BooleanNode, str: StringNode}


def open_node(schema: type) -> DictConfig:
    """The dataclass's fields as typed leaves of a plain DictConfig (see the module's docstring for why not structured)."""
    node = DictConfig({})
    for f in dataclasses.fields(schema):
        hint = f.type
        optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
        if optional:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        node[f.name] = _NODES[hint](f.default, is_optional=optional)
    return node


def register() -> None:
    """Put the schemas in Hydra's ConfigStore as schema/<name> (done on `import dlf.run.train`)."""
    cs = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        cs.store(group="schema", name=name, node=open_node(schema))
