"""What a run shows must not mislead: XOR's margin-based "solved", CNN images as near-square grids, one model summary,
a train.log with the run's INFO lines, no Lightning deprecation noise."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from dlf.run.build import build_system


def _xor_system(tmp_path, output_scale: float, make_cfg):
    """model=mlp_xor with a 2-2-1 net set by hand to XOR: h1 = OR, h2 = AND, y_hat = sigma(s (20 h1 - 20 h2 - 10)).
    s = 1 puts the outputs near 0 and 1; s = 0.01 keeps every output on the right side of 0.5 but within 0.03 of it."""
    cfg = make_cfg(["model=mlp_xor", "model.net.hidden=[2]", "data.repeats=1"], tmp_path)
    dm = instantiate(cfg.data)
    facts = dm.prepare()
    opt = functools.partial(torch.optim.SGD, lr=0.0)  # a training epoch that leaves the weights as set
    model = build_system(cfg, facts, optimizer=opt)
    hidden, out = model.net.linears
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor([[20.0, 20.0], [20.0, 20.0]]))
        hidden.bias.copy_(torch.tensor([-10.0, -30.0]))
        out.weight.copy_(output_scale * torch.tensor([[20.0, -20.0]]))
        out.bias.copy_(output_scale * torch.tensor([-10.0]))
    return model, dm


@pytest.mark.parametrize("scale,solved", [(1.0, 1.0), (0.01, 0.0)])
def test_xor_solved_uses_the_readme_margin(scale, solved, tmp_path, make_cfg):
    model, dm = _xor_system(tmp_path, scale, make_cfg)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, datamodule=dm)
    fit = {k: float(v) for k, v in trainer.callback_metrics.items()}
    (test,) = trainer.test(model, datamodule=dm, verbose=False)
    y_hat = model(dm.test[0]).detach().flatten()
    assert ((y_hat > 0.5).float() == dm.test[1].flatten()).all()  # right side of 0.5 either way
    for metrics, stage in ((fit, "train"), (fit, "val"), (test, "test")):
        assert metrics[f"{stage}/acc"] == 1.0
        assert metrics[f"{stage}/solved"] == solved, (stage, y_hat.tolist())


@pytest.mark.slow
def test_course_exercise_is_not_solved(tmp_path, make_cfg):
    """experiment=xor_seed: the outputs stay near 0.5 after 10,000 steps (README); test/solved says so."""
    from dlf.run.train import run

    cfg = make_cfg(["experiment=xor_seed", "logger=none"], tmp_path, fast=False)
    metrics = run(cfg)
    assert metrics["test/solved"] == 0.0


@pytest.mark.parametrize("model", ["cnn", "cnn1d"])
def test_cnn_images_are_near_square_grids(model, tmp_path, make_cfg):
    """Feature maps and kernels reach TensorBoard as grids about as wide as high (they were 1602x202 and 802x102
    strips: unreadable at TensorBoard's card size)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dlf.run.train import run

    cfg = make_cfg([f"model={model}", "logger=tensorboard"], tmp_path)
    run(cfg)
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    tags = [t for t in events.Tags()["images"] if t.startswith(("cnn/feature_maps/", "cnn/kernels/"))]
    assert {"cnn/feature_maps/block0", "cnn/feature_maps/block1", "cnn/kernels/block0"} <= set(tags)
    for tag in tags:
        img = events.Images(tag)[-1]
        assert 0.5 <= img.width / img.height <= 2.0, f"{tag} is {img.width}x{img.height}"


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    """One plain `python train.py` (no fork server: its own imports, its own warnings) of a few XOR steps."""
    from cli_server import run_train

    cwd = tmp_path_factory.mktemp("xor_run")
    r = run_train(["model=mlp_xor", "data.repeats=2", "trainer.max_epochs=1", "logger=none", "trainer=cpu",
                   "trainer.enable_progress_bar=false"], cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = (cwd / "logs").glob("mlp_xor/runs/*")
    return r, run


def test_no_lightning_deprecation_line(xor_run):
    r, _ = xor_run
    assert "LeafSpec" not in r.stderr, r.stderr


def test_train_log_has_the_runs_info_lines(xor_run):
    """<run dir>/train.log (README) holds Lightning's INFO lines and dlf's report; the console shows each of dlf's
    lines once and none of Lightning's INFO lines."""
    r, run = xor_run
    log = (run / "train.log").read_text()
    assert "[lightning.pytorch" in log and "`Trainer.fit` stopped" in log
    assert "[dlf][INFO] - Test: test/acc=" in log and f"[dlf][INFO] - Run dir: {run}" in log
    assert "Predictions on the 4 training points" in log
    assert r.stdout.count("Test: test/acc=") == 1 and r.stdout.count("Run dir: ") == 1
    assert "`Trainer.fit` stopped" not in r.stdout + r.stderr


def _summaries(stdout: str) -> dict:
    return {"dlf": stdout.count("CNN (2-D, impl="), "lightning": stdout.count("Total params")}


@pytest.mark.parametrize("switch,expected", [("true", {"dlf": 1, "lightning": 0}), ("false", {"dlf": 0, "lightning": 0})])
def test_cnn_prints_one_model_summary(switch, expected, tmp_path):
    """Once dlf's layer plan and Lightning's table both came; trainer.enable_model_summary=false left dlf's."""
    from cli_server import DATA_CACHE, shared_server

    r = shared_server().run(["model=cnn", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "logger=none",
                             "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer=cpu",
                             "callbacks.cnn_figures=null", f"trainer.enable_model_summary={switch}",
                             f"paths.data_dir={DATA_CACHE}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _summaries(r.stdout) == expected, r.stdout


def test_lightning_summary_measures_flops(tmp_path):
    """Lightning's table gets an example input (dlf's systems set example_input_array): no column of zero FLOPs."""
    import re

    from cli_server import DATA_CACHE, shared_server

    r = shared_server().run(["model=mlp", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "logger=none",
                             "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer=cpu",
                             f"paths.data_dir={DATA_CACHE}"], cwd=tmp_path, env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert _summaries(r.stdout)["lightning"] == 1
    assert re.search(r"Total FLOPs: +[1-9]", r.stdout), r.stdout


def _tool(module: str, args: list[str], cwd):
    """`dlf-generate` / `dlf-sample` as a user runs them (python -m, this checkout's code, data under cwd)."""
    import subprocess
    import sys

    from cli_server import cli_env

    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=cli_env(cwd),
                          capture_output=True, text=True, timeout=300)


def _stored_run(family: str, tmp_path):
    """A copy of a small run dir as dlf wrote it (tests/data/ckpt_v0_1)."""
    import shutil

    from cli_server import ROOT

    run = tmp_path / "logs" / family / "runs" / "r1"
    shutil.copytree(ROOT / "tests" / "data" / "ckpt_v0_1" / family, run)
    return run


@pytest.mark.parametrize("family", ["gan", "lstm"])
@pytest.mark.parametrize("form", ["run_dir", "checkpoint"])
def test_tools_take_a_run_dir_or_a_checkpoint(family, form, tmp_path, monkeypatch, capsys):
    """dlf-generate (GAN) and dlf-sample (LSTM) take a run dir or a checkpoint in it: the README's
    `dlf-generate logs/gan/runs/<run>/checkpoints/best.ckpt` once failed (`.../best.ckpt/.hydra/config.yaml not found`)."""
    from dlf.tools import generate, sample

    monkeypatch.setenv("DLF_ROOT", str(tmp_path))  # the saved config's data dir
    run = _stored_run(family, tmp_path)
    target = str(run if form == "run_dir" else run / "checkpoints" / "best.ckpt")
    if family == "gan":
        generate.main([target, "-n", "8"])
        assert len((run / "samples" / "samples.csv").read_text().splitlines()) == 9  # into <run dir>/samples
    else:
        assert sample.main([target, "--length", "10", "--prompt", "The"]) == 0
        assert "Sample (temperature" in capsys.readouterr().out


def test_generate_says_why_kl_is_missing(tmp_path, monkeypatch, capsys):
    """A GAN none of whose 64 samples is high quality (the stored tiny run): `kl=n/a (too few samples ...)`, not
    `kl=nan`; a defined KL is printed as a number."""
    from dlf.tools import generate

    monkeypatch.setenv("DLF_ROOT", str(tmp_path))
    generate.main([str(_stored_run("gan", tmp_path))])
    out = capsys.readouterr().out
    assert "kl=n/a (too few samples: 0 of 64 are high quality" in out and "nan" not in out, out
    assert generate.score_line({"gen/modes": 8.0, "gen/kl": 0.0123}, 64) == "modes=8; kl=0.0123"


@pytest.mark.parametrize("module,family", [("dlf.tools.generate", "gan"), ("dlf.tools.sample", "lstm")])
def test_tampered_run_config_gives_one_line(module, family, tmp_path):
    """A run dir whose .hydra/config.yaml names a target Hydra refuses (shutil.rmtree): one line, non-zero, nothing
    run (the folder it would remove is still there)."""
    run = _stored_run(family, tmp_path)
    cfg = run / ".hydra" / "config.yaml"
    text = cfg.read_text()
    net_target = "dlf.nets.gan.build_gan_nets" if family == "gan" else "dlf.nets.lstm.build_lstm"
    assert f"_target_: {net_target}" in text
    victim = tmp_path / "victim"
    victim.mkdir()
    cfg.write_text(text.replace(f"_target_: {net_target}\n    _partial_: true",
                                f"_target_: shutil.rmtree\n    _partial_: true\n    path: {victim}"))
    r = _tool(module, [run], tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"error: {cfg} cannot be built at model.net: Target 'shutil.rmtree' is blocklisted" in lines[0]
    assert victim.is_dir()


@pytest.mark.parametrize("what,expected", [
    ("loose.ckpt", "loose.ckpt is not inside a dlf run dir"),
    ("empty", "empty/.hydra/config.yaml not found: pass the run dir of a dlf run"),
    ("nope", "nope does not exist: pass a run dir"),
])
def test_generate_names_a_bad_run_in_one_line(what, expected, tmp_path, monkeypatch, capsys):
    from dlf.tools import generate

    monkeypatch.chdir(tmp_path)
    run = _stored_run("gan", tmp_path)
    (tmp_path / "loose.ckpt").write_bytes((run / "checkpoints" / "best.ckpt").read_bytes())
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        generate.main([what])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith(f"dlf-generate: error: {expected}"), err
