"""Whole runs of model=rnn / model=lstm through dlf.run.train.run: smoke runs, bad input, learning, sampling."""

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from dlf.errors import DlfError
from dlf.run.train import run
from dlf.tools.sample import main as sample_main

ADDING = ["data=adding", "data.n_train=300", "data.n_val=100", "data.n_test=100"]
SMOKE = [  # the first one also writes TensorBoard events; the others run without a logger
    ["model=lstm", *ADDING, "data.seq_len=20", "model.tbptt_steps=7", "model.net.hidden_size=16"],
    ["model=rnn", "logger=none", "model.net.hidden_size=16"],  # MNIST-1D, 40 steps of 1 feature
    ["model=rnn", "data=text", "data.corpus_chars=5000", "model.net.impl=scratch", "model.net.hidden_size=16",
     "logger=none"],
    ["model=lstm", "model.net.impl=scratch", "model.net.num_layers=2", "model.net.dropout=0.2", "logger=none",
     "model.net.init_state=random", "model.net.hidden_size=16", "optimizer=rmsprop", *ADDING, "data.seq_len=8"],
]


@pytest.mark.filterwarnings("error:This figure includes Axes that are not compatible with tight_layout")
@pytest.mark.parametrize("overrides", SMOKE, ids=lambda o: " ".join(o))
def test_smoke(overrides, tmp_path, make_cfg):
    m = run(make_cfg(overrides, tmp_path))
    assert any(k.startswith("test/") for k in m)
    plots = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {"grad_through_time_start.png", "grad_through_time_end.png"} <= plots
    if "model=lstm" in overrides:
        assert "lstm_gates_end.png" in plots


@pytest.mark.parametrize("model", ["rnn", "lstm"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adagrad", "rmsprop", "adam"])
def test_every_optimizer_runs(model, optimizer, tmp_path, make_cfg):
    cfg = make_cfg([f"model={model}", *ADDING, "data.seq_len=10", f"optimizer={optimizer}", "logger=none",
                    "model.net.hidden_size=8"], tmp_path)
    with open_dict(cfg):
        cfg.callbacks = {}  # no figures, no checkpoints: only the optimizer is under test
        cfg.trainer.enable_checkpointing = False
    m = run(cfg)
    assert m["test/mse"] == m["test/mse"]  # not NaN


@pytest.mark.parametrize("data", ["digits", "xor"])
def test_sequence_model_on_non_sequence_data_is_one_line(data, tmp_path, make_cfg):
    with pytest.raises(DlfError, match=f"cannot take data={data}") as e:
        run(make_cfg(["model=lstm", f"data={data}"], tmp_path))
    assert "\n" not in str(e.value) and "SequenceSystem" in str(e.value)


def test_cli_bad_input_is_one_line(tmp_path, run_cli, root):
    r = run_cli(["model=rnn", "data=adding", "model.tbptt_steps=0", "logger=none"], cwd=tmp_path,
                env={"PYTHONPATH": str(root / "src")})  # this checkout's code, whatever the cwd
    assert r.returncode != 0
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("dlf: error: model.tbptt_steps=0 must be a positive"), r.stderr[-2000:]


def test_lstm_learns_short_adding_problem(tmp_path, make_cfg):
    """Quick version of the T=100 target: T=10, a few hundred steps, well under the 1/6 baseline."""
    cfg = make_cfg(["experiment=lstm_adding", "data.seq_len=10", "model.net.hidden_size=32", "logger=none"],
                   tmp_path, fast=False)
    with open_dict(cfg):
        cfg.data.n_train = 20_000
        cfg.trainer.max_steps = 400
        cfg.trainer.val_check_interval = 200
        cfg.trainer.max_time = None
        cfg.model.lr_table.adam = 0.003
    m = run(cfg)
    assert m["test/mse"] < 0.05, m


def test_char_lm_beats_unigram_and_samples(tmp_path, capsys, make_cfg):
    cfg = make_cfg(["experiment=lstm_text", "data.corpus_chars=40000", "data.seq_len=32", "data.batch_size=32",
                    "model.net.hidden_size=64", "logger=none"], tmp_path, fast=False)
    with open_dict(cfg):
        cfg.trainer.max_epochs = 4  # 31 steps an epoch
        cfg.model.lr_table.adam = 0.01
    m = run(cfg)
    from dlf.data.text import TextDataModule

    unigram = TextDataModule(corpus_chars=40000).prepare().extra["unigram_ppl"]
    assert m["test/ppl"] < 0.75 * unigram, (m, unigram)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")  # what a CLI run writes (the compose API does not)
    capsys.readouterr()
    assert sample_main([str(tmp_path), "--length", "40", "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "Top 3 next characters after 'The sun rises in the'" in out and "The sun rises in the" in out.split("\n")[-2]
    assert sample_main([str(tmp_path), "--prompt", "€"]) == 2
    assert "never saw" in capsys.readouterr().err


# ---- the full targets (pytest -m slow) ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("T", [100, 200])
def test_lstm_solves_adding_problem(T, tmp_path, make_cfg):
    """LSTM, Adam 3e-3, clip 1, batch 50, hidden 128, chrono initialisation (t_max = T), 1,250 steps at T = 100 (the
    recipe), 2,500 at T = 200: test MSE below 0.01 (baseline 0.167). At T = 200 the plateau ended by step 1,250 on
    seeds 1-3 (docs/sequence.md); with forget bias 1 it lasted to about step 3,750 and the run ended on it."""
    steps = ["trainer.max_steps=2500"] if T == 200 else []
    cfg = make_cfg(["experiment=lstm_adding", f"data.seq_len={T}", *steps, "logger=none", "seed=1"], tmp_path,
                   fast=False)
    with open_dict(cfg):
        cfg.trainer.max_time = None
    assert cfg.model.net.forget_bias == "chrono" and cfg.model.net.t_max == T
    assert run(cfg)["test/mse"] < 0.01


@pytest.mark.slow
def test_lstm_mnist1d_reaches_85_percent(tmp_path, make_cfg):
    cfg = make_cfg(["model=lstm", "logger=none"], tmp_path, fast=False)
    assert run(cfg)["test/acc"] >= 0.85


@pytest.mark.slow
def test_lstm_mnist1d_experiment_reaches_97_percent(tmp_path, make_cfg):
    """`OMP_NUM_THREADS=1 python train.py experiment=lstm_mnist1d seed=1` (18 epochs of batch 50, Adam 1e-2 decaying
    to zero): test accuracy >= 97% (97.3% on seed 1; docs/results.md's row and the zoo's card, both one thread).
    One thread as measured: with two, seed 1 ends at 96.9% (the margin is thin; docs/sequence.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = make_cfg(["experiment=lstm_mnist1d", "seed=1", "logger=none"], tmp_path, fast=False)
        assert cfg.trainer.max_epochs == 18
        assert run(cfg)["test/acc"] >= 0.97
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_char_lm_well_under_unigram(tmp_path, make_cfg):
    from dlf.data.text import TextDataModule

    unigram = TextDataModule().prepare().extra["unigram_ppl"]
    m = run(make_cfg(["experiment=lstm_text", "logger=none"], tmp_path, fast=False))
    assert m["test/ppl"] < 0.25 * unigram, (m["test/ppl"], unigram)
