"""Validation, one place per concern: Hydra checks the types dlf.run.schema declares as it composes (and dlf.run.cli.explain
says it in dlf's line), dlf.run.checks.CHECKS runs one function per concern on the composed config, and each rule's words
are written once in the source."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from dlf.errors import DlfError
from dlf.run import checks
from dlf.run.cli import explain
from dlf.run.train import CONFIG_DIR

SRC = Path(__file__).resolve().parents[1] / "src" / "dlf"


def _compose(overrides: list[str]):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = "<run dir>"  # as dlf.run.train.prepare does: the run dir is not made yet
    return cfg


@pytest.mark.parametrize("override,line", [
    ("seed=abc", "seed='abc' must be an integer in [0, 2**32): set e.g. seed=42"),
    ("optimizer.lr=abc", "optimizer.lr='abc' must be a positive number: set e.g. optimizer.lr=0.01"),
    ("data.batch_size=1.5", "data.batch_size=1.5 must be a positive integer: set e.g. data.batch_size=64"),
    ("trainer.max_epochs=ten", "trainer.max_epochs='ten' must be an integer (-1: no limit): set e.g. trainer.max_epochs=10"),
    ("trainer.log_every_n_steps=often", "trainer.log_every_n_steps='often' must be a positive integer: set e.g. "
                                        "trainer.log_every_n_steps=10"),
])
def test_hydra_checks_the_schema_types_as_it_composes(override, line):
    with pytest.raises(ConfigCompositionException) as e:
        _compose(["model=mlp", override])
    assert explain(e.value) == (line, 2)


def test_a_wrong_type_and_a_value_out_of_range_say_the_same_words():
    with pytest.raises(ConfigCompositionException) as e:
        _compose(["seed=abc"])
    with pytest.raises(DlfError) as r:
        checks.seed(OmegaConf.create({"seed": -1}))
    assert explain(e.value)[0].split(" must be ")[1] == str(r.value).split(" must be ")[1]


@pytest.mark.parametrize("overrides", [["~optimizer.weight_decay"], ["~scheduler"], ["+trainer.benchmark=true"],
                                       ["optimizer.lr=1"], ["seed=7"], ["+optimizer.foreach=false"]])
def test_the_schemas_take_every_override_form(overrides):
    cfg = _compose(overrides)
    checks.check_config(cfg)
    assert isinstance(cfg.seed, int) and isinstance(cfg.trainer.max_epochs, int)


def test_unknown_keys_are_still_refused():
    with pytest.raises(ConfigCompositionException) as e:
        _compose(["optimizer.lrr=0.1"])
    assert "unknown option 'optimizer.lrr'" in explain(e.value)[0]


def test_the_table_runs_every_check_and_each_has_one_concern():
    names = [c.__name__ for c in checks.CHECKS]
    assert len(names) == len(set(names)) >= 12
    assert names.index("ddp") < names.index("gpu_visible") and names[0] == "resolves"
    for c in checks.CHECKS:
        c(_compose(["model=gan"]))  # the shipped configs pass every check


@pytest.mark.parametrize("rule", ["choose torch or scratch", "set e.g. data.batch_size=64", "an integer in [0, 2**32)",
                                  "set e.g. optimizer.lr=0.01"])
def test_each_rule_is_written_once(rule):
    where = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if rule in p.read_text()]
    assert where == ["errors.py"], where  # the words of a rule: dlf.errors (the checks and the constructors call it)


def test_nets_and_data_modules_built_in_code_use_the_same_checks():
    from dlf.data.toy import MoonsDataModule
    from dlf.nets.mlp import build_mlp

    with pytest.raises(DlfError, match="model.net.impl='numpy' is not known: choose torch or scratch"):
        build_mlp(2, 1, impl="numpy")
    with pytest.raises(DlfError, match="data.batch_size=0 must be a positive integer"):
        MoonsDataModule(batch_size=0)
