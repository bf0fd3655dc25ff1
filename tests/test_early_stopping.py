"""Early stopping (`callbacks=early_stopping`): Lightning's EarlyStopping on the model's `monitor`, off by default. An
early-stopped run tests its best checkpoint; killed before it stops and resumed with ckpt_path=last it stops at the
same step with bit-identical weights, optimizer and callback state; resumed after it stopped it trains no further."""

from __future__ import annotations

import pytest
from cli_server import DATA_CACHE, shared_server
from hydra import compose, initialize_config_dir
from test_resume import COMMON, _final, _runs, _test_line, assert_same

from dlf.run.train import CONFIG_DIR

# MNIST-1D's MLP, 6 epochs of 5 batches at most; `min_delta` larger than any change of val/acc makes every validation
# after the first one "no improvement", so with patience 1 the run stops after its 2nd epoch: step 10 of 30.
ES = ["model=mlp", "trainer.max_epochs=6", "trainer.limit_train_batches=5", "trainer.limit_val_batches=2",
      "trainer.limit_test_batches=2", "callbacks=early_stopping", "callbacks.early_stopping.patience=1",
      "callbacks.early_stopping.min_delta=10", *COMMON, f"paths.data_dir={DATA_CACHE}"]
KEY = "EarlyStopping{'monitor': 'val/acc', 'mode': 'max'}"


def _compose(overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def test_early_stopping_is_off_by_default_and_watches_the_models_monitor():
    assert "early_stopping" not in _compose(["model=gan"]).callbacks
    for model, monitor, mode in (("mlp", "val/acc", "max"), ("gan", "val/score", "max"), ("rnn", "val/loss", "min"),
                                 ("mlp_xor", "val/loss", "min")):
        cfg = _compose([f"model={model}", "callbacks=early_stopping"])
        es = cfg.callbacks.early_stopping
        assert (es.monitor, es.mode, es.patience, es.min_delta) == (monitor, mode, 3, 0.0)
        assert set(_compose([f"model={model}"]).callbacks) < set(cfg.callbacks)  # the defaults and the model's kept
    assert _compose(["callbacks=early_stopping", "monitor=val/acc", "monitor_mode=max"]).callbacks.early_stopping.mode == "max"


@pytest.mark.parametrize(("key", "value", "line"), [
    ("patience", "-1", "callbacks.early_stopping.patience=-1 must be an integer >= 0: set e.g. "
                       "callbacks.early_stopping.patience=3"),
    ("min_delta", "-0.1", "callbacks.early_stopping.min_delta=-0.1 must be a number >= 0 (the least change of "
                          "`monitor` that counts as an improvement): set e.g. callbacks.early_stopping.min_delta=0.001")])
def test_bad_patience_or_min_delta_fails_at_start_up_in_one_line(key, value, line, tmp_path):
    r = shared_server().run(["callbacks=early_stopping", f"callbacks.early_stopping.{key}={value}"], cwd=tmp_path)
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1] == f"dlf: error: {line}"
    assert not (tmp_path / "logs").exists()


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """The run left alone: (its run dir, its last.ckpt, its Test line)."""
    root = tmp_path_factory.mktemp("stopped")
    r = shared_server().run(ES, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = _runs(root, "mlp")
    return run, _final(run), _test_line(r.stdout)


def test_an_early_stopped_run_stops_and_tests_its_best_checkpoint(stopped, tmp_path):
    run, final, test_line = stopped
    assert final["global_step"] == 10 and final["callbacks"][KEY]["stopped_epoch"] == 1  # 10 of the 30 steps
    # the same test, scored by the best checkpoint alone
    r = shared_server().run([*ES, "train=false", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _test_line(r.stdout) == test_line


def test_killed_before_it_stops_and_resumed_it_stops_at_the_same_step_bit_identically(stopped, tmp_path):
    _, final, test_line = stopped
    kill = ["+callbacks.kill._target_=killers.KillAt", "+callbacks.kill.step=7", "+callbacks.kill.sig=SIGKILL"]
    r = shared_server().run([*ES, *kill], cwd=tmp_path)
    assert r.returncode == -9, r.stderr[-3000:]
    (run,) = _runs(tmp_path, "mlp")
    assert _final(run)["callbacks"][KEY]["wait_count"] == 0  # killed in epoch 2, before the stopping validation
    r = shared_server().run([*ES, "ckpt_path=last"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = _final(run)
    assert got["global_step"] == final["global_step"] == 10
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "loops"):
        assert_same(final[key], got[key], key)
    assert_same(final["callbacks"][KEY], got["callbacks"][KEY], "early stopping")
    assert _test_line(r.stdout) == test_line


def test_a_run_that_stopped_trains_no_further_when_resumed(stopped, tmp_path):
    import shutil

    run, final, test_line = stopped
    copy = tmp_path / "logs" / "mlp" / "runs" / run.name
    shutil.copytree(run, copy)
    r = shared_server().run([*ES, "ckpt_path=last"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = _final(copy)
    assert got["global_step"] == 10  # Lightning's EarlyStopping alone would train a 3rd epoch (step 15) first
    assert_same(final["state_dict"], got["state_dict"], "state_dict")
    assert _test_line(r.stdout) == test_line
