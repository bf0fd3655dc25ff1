"""The bad-input catalogue (docs/bad_inputs.md): every case exits non-zero with one `dlf: error: ...` line naming the
value and the fix, prints no traceback, and changes no file of an earlier run. Add a case: append to CASES."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from cli_server import DATA_CACHE, run_train, shared_server

XOR = ["model=mlp_xor", "data.repeats=3", "trainer.max_epochs=1", "logger=none", "trainer=cpu"]
MLP = ["model=mlp", "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
       "logger=none", "trainer=cpu", f"paths.data_dir={DATA_CACHE}"]

# (id, command-line arguments, substrings the error line must contain). {ckpt}, {cwd}, ... are filled in below.
CASES = [
    # unknown names
    ("unknown-model", ["model=mlpp"], ["unknown model 'mlpp'", "choose one of"]),
    ("unknown-data", ["data=mnist2d"], ["unknown data 'mnist2d'", "mnist1d"]),
    ("unknown-optimizer", ["optimizer=adamw"], ["unknown optimizer 'adamw'", "adam"]),
    ("unknown-trainer", ["trainer=tpu"], ["unknown trainer 'tpu'", "cpu"]),
    ("unknown-key", ["optimizer.lrr=0.1"], ["unknown option 'optimizer.lrr'", "did you mean optimizer.lr?",
                                             "+optimizer.lrr="]),
    ("unknown-key-nested", ["trainer.max_epoch=3"], ["unknown option 'trainer.max_epoch'",
                                                     "did you mean trainer.max_epochs "]),
    ("add-existing-key", ["model=cnn", "+trainer.limit_train_batches=20"],
     ["'trainer.limit_train_batches' already exists", "drop the '+'", "write trainer.limit_train_batches=20"]),
    ("bad-syntax", ["optimizer.lr=[0.1"], ["cannot read the command line"]),
    # wrong types
    ("lr-not-a-number", ["optimizer.lr=abc"], ["optimizer.lr='abc'", "optimizer.lr=0.01"]),
    ("batch-size-float", ["model=mlp", "data.batch_size=1.5"], ["data.batch_size=1.5", "data.batch_size=64"]),
    ("seed-not-int", ["seed=abc"], ["seed='abc'", "seed=42"]),
    ("max-epochs-not-int", ["trainer.max_epochs=ten"], ["trainer.max_epochs='ten'", "trainer.max_epochs=10"]),
    ("deterministic-not-bool", ["trainer.deterministic=maybe"], ["trainer.deterministic='maybe'", "true"]),
    ("train-not-bool", ["train=yes please"], ["train='yes please'", "train=true"]),
    # out of range
    ("lr-negative", ["optimizer.lr=-0.1"], ["optimizer.lr=-0.1", "positive"]),
    ("lr-zero", ["optimizer.lr=0"], ["optimizer.lr=0", "positive"]),
    ("batch-size-zero", ["model=mlp", "data.batch_size=0"], ["data.batch_size=0", "positive integer"]),
    ("seed-negative", ["seed=-1"], ["seed=-1", "2**32"]),
    ("max-epochs-negative", ["trainer.max_epochs=-5"], ["trainer.max_epochs=-5", "-1: no limit"]),
    ("min-over-max-epochs", ["trainer.min_epochs=5", "trainer.max_epochs=2"], ["trainer.min_epochs=5", "max_epochs=2"]),
    ("clip-negative", ["trainer.gradient_clip_val=-1"], ["trainer.gradient_clip_val=-1", ">= 0"]),
    ("limit-over-one", ["trainer.limit_train_batches=1.5"], ["trainer.limit_train_batches=1.5", "[0, 1]"]),
    ("precision-unknown", ["trainer.precision=17"], ["trainer.precision=17", "32-true"]),
    ("accelerator-unknown", ["trainer.accelerator=quantum"], ["trainer.accelerator='quantum'", "cpu"]),
    ("momentum-over-one", ["optimizer=momentum", "optimizer.momentum=1.5"], ["optimizer.momentum=1.5", "[0, 1]"]),
    ("betas-out-of-range", ["optimizer.betas=[0.9,1.2]"], ["optimizer.betas=[0.9, 1.2]", "[0, 1)"]),
    ("weight-decay-negative", ["optimizer.weight_decay=-0.01"], ["optimizer.weight_decay=-0.01", ">= 0"]),
    ("val-fraction-one", ["model=mlp", "data.val_fraction=1.0"], ["data.val_fraction=1.0", "[0, 1)"]),
    ("mnist1d-too-few", ["model=mlp", "data.num_samples=10"], ["data.num_samples=10", ">= 50"]),
    ("xor-repeats-zero", ["model=mlp_xor", "data.repeats=0"], ["data.repeats=0", "positive integer"]),
    ("adding-variant-unknown", ["experiment=lstm_adding", "data.variant=hochreiter", "logger=none"],
     ["data.variant='hochreiter' is not an adding-problem variant", "arjovsky2016, hochreiter1997"]),
    ("ckpt-every-negative", ["callbacks.step_checkpoint.every_n_train_steps=-3"],
     ["callbacks.step_checkpoint.every_n_train_steps=-3", "every_n_train_steps=100"]),
    ("patience-negative", ["callbacks=early_stopping", "callbacks.early_stopping.patience=-1"],
     ["callbacks.early_stopping.patience=-1", "patience=3"]),
    ("min-delta-negative", ["callbacks=early_stopping", "callbacks.early_stopping.min_delta=-0.1"],
     ["callbacks.early_stopping.min_delta=-0.1", "min_delta=0.001"]),
    ("early-stopping-no-monitor", ["callbacks=early_stopping", "monitor=null"],
     ["callbacks.early_stopping", "no monitor", "monitor=val/loss"]),
    ("plateau-no-monitor", ["scheduler=plateau", "monitor=null"],
     ["scheduler=plateau", "no monitor", "monitor=val/loss"]),
    # meaningless combinations
    ("nothing-to-do", ["train=false", "test=false"], ["train=false and test=false", "train=true"]),
    ("task-name-slash", ["task_name=a/b"], ["task_name='a/b'", "task_name=my_run"]),
    ("monitor-mode", ["monitor_mode=maximum"], ["monitor_mode='maximum'", "min or max"]),
    ("monitor-not-a-metric-name", ["monitor=accuracy"], ["monitor='accuracy'", "monitor=val/loss"]),
    ("missing-value", ["optimizer.lr=???"], ["missing required value", "optimizer.lr"]),
    ("unknown-impl", ["model.net.impl=numpy"], ["model.net.impl='numpy'", "torch or scratch"]),
    # keys that moved (README, Changelog)
    ("moved-lr-table", ["lr_table.adam=0.01"], ["'lr_table.adam'", "model.lr_table", "Changelog"]),
    ("moved-lr-decay", ["model=gan", "model.lr_decay=none"], ["'model.lr_decay'", "scheduler=linear | none"]),
    ("moved-key-in-a-config", ["+adam_betas=[0.5,0.999]"], ["adam_betas is no longer read", "model.adam_betas"]),
    # need the data or the model built (start-up, after imports)
    ("model-data-mismatch", [*XOR, "model.output=softmax"], ["model.output=softmax", "data=xor", "sigmoid"]),
    ("unknown-activation", [*XOR, "model.net.activation=swish"], ["swish"]),
    ("unknown-cost", [*XOR, "model.cost=hinge"], ["hinge"]),
    ("compile-scratch", [*XOR, "model.net.impl=scratch", "model.compile=true"],
     ["model.compile=true cannot be used with model.net.impl=scratch", "impl=torch"]),
    ("bf16-scratch", [*XOR, "model.net.impl=scratch", "trainer.precision=bf16-mixed"],
     ["trainer.precision=bf16-mixed cannot be used with model.net.impl=scratch", "32-true"]),
    ("gan-pack-batch", ["model=gan", "model.pack=3", "trainer.max_epochs=1", "logger=none", "trainer=cpu"],
     ["data.batch_size=1024 is not divisible by model.pack=3", "multiple of 3"]),
    ("unknown-monitor-metric", [*XOR, "monitor=val/accuracy"], ["monitor=val/accuracy", "val/acc"]),
    ("sweep-job-failed", ["-m", *XOR, "model.net.activation=swish,relu"], ["1 of 2 jobs of the sweep failed",
                                                                          "swish", "result.json"]),
    ("diverges", [*MLP, "optimizer=sgd", "optimizer.lr=1e6"], ["training diverged at step", "lower the learning rate",
                                                               "gradient_clip_val"]),
    # checkpoints
    ("ckpt-missing", ["ckpt_path=nope/last.ckpt"], ["ckpt_path=nope/last.ckpt does not exist", "ckpt_path=last"]),
    ("ckpt-is-a-folder", ["ckpt_path={cwd}"], ["is a folder", "last.ckpt"]),
    ("ckpt-last-none", ["model=mlp", "ckpt_path=last"], ["ckpt_path=last found no checkpoint", "task_name=mlp"]),
    ("ckpt-truncated", ["ckpt_path={cwd}/truncated.ckpt"], ["truncated.ckpt is damaged", "truncated", "best.ckpt"]),
    ("ckpt-not-torch", ["ckpt_path={cwd}/notes.ckpt"], ["not a readable dlf checkpoint"]),
    ("ckpt-with-code", ["ckpt_path={cwd}/pickled_code.ckpt"], ["not a readable dlf checkpoint", "weights_only=True) refuses"]),
    ("ckpt-other-model", [*MLP, "ckpt_path={ckpt}"], ["does not match this model", "model=mlp_xor"]),
    ("ckpt-other-family", [*XOR, "ckpt_path={cwd}/rnn.ckpt"], ["checkpoint of dlf.systems.rnn.RNNSystem",
                                                               "not of dlf.systems.mlp.MLPSystem"]),
    ("ckpt-other-shapes", [*XOR, "model.net.hidden=[7]", "ckpt_path={ckpt}"], ["model.net.hidden=[7]", "[5]"]),
    ("ckpt-last-other-shapes", [*XOR, "model.net.hidden=[3]", "ckpt_path=last"], ["model.net.hidden=[3]"]),
    # many processes (tests/test_ddp.py has the GPU count, the busy port and the rank that never joins)
    ("ddp-without-cuda", ["trainer=ddp"], ["trainer=ddp runs one process per CUDA GPU", "trainer=ddp_cpu"]),
    ("ddp-cpu-too-many", ["trainer=ddp_cpu", "trainer.devices=999"], ["trainer.devices=999 CPU processes", "cores"]),
    ("devices-99-auto", ["trainer.devices=999"], ["trainer.devices=999 CPU processes"]),
    ("num-nodes-no-launcher", ["trainer=ddp_cpu", "trainer.num_nodes=2"], ["trainer.num_nodes=2 needs a launcher",
                                                                           "torchrun --nnodes=2"]),
    ("ddp-multirun", ["-m", "trainer=ddp_cpu", "optimizer=sgd,adam"], ["multirun (-m) cannot start DDP", "#15689",
                                                                       "for o in sgd adam"]),
    ("ddp-timeout-zero", ["trainer=ddp_cpu", "ddp_timeout=0"], ["ddp_timeout=0", "ddp_timeout=600"]),
]


class Pickled:  # a class torch.load(weights_only=True) must refuse to rebuild
    pass


def _hash_tree(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder with one earlier run (mlp_xor, with checkpoints) and some broken files; a fork server for the CLI."""
    cwd = tmp_path_factory.mktemp("bad_inputs")
    srv = shared_server()
    r = srv.run([*XOR, "trainer.max_epochs=2"], cwd=cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    (earlier,) = list((cwd / "logs" / "mlp_xor" / "runs").iterdir())
    ckpt = earlier / "checkpoints" / "last.ckpt"
    data = ckpt.read_bytes()
    (cwd / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (cwd / "notes.ckpt").write_text("not a checkpoint\n")
    torch.save({"state_dict": {}, "thing": Pickled()}, cwd / "pickled_code.ckpt")
    other = torch.load(ckpt, weights_only=True)  # as if another family (an RNN) had written it
    other["dlf"]["model"]["_target_"] = "dlf.systems.rnn.RNNSystem"
    torch.save(other, cwd / "rnn.ckpt")
    # (a torn data cache is no bad input: it is rebuilt with a warning, tests/test_faults.py)
    yield {"srv": srv, "cwd": cwd, "earlier": earlier, "ckpt": ckpt}


def _check(r, expect: list[str], earlier_hash: dict, earlier: Path) -> None:
    assert r.returncode not in (0, None) and r.returncode > 0, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("dlf: error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1] == errors[0], "the error line must be the last thing on stderr"
    assert ":" in errors[0][len("dlf: error:"):], "the line names the fix after a colon"
    for s in expect:
        assert s in errors[0], f"{s!r} not in {errors[0]!r}"
    assert _hash_tree(earlier) == earlier_hash, "a file of the earlier run changed"


@pytest.mark.parametrize("case_id,args,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line(world, case_id, args, expect):
    fill = {"cwd": world["cwd"], "ckpt": world["ckpt"]}
    args = [a.format(**fill) for a in args]
    before = _hash_tree(world["earlier"])
    r = world["srv"].run(args, cwd=world["cwd"])
    if os.environ.get("DLF_CATALOGUE_OUT"):  # collect the lines shown in docs/bad_inputs.md
        with open(os.environ["DLF_CATALOGUE_OUT"], "a") as f:
            line = (r.stderr.strip().splitlines() or [""])[-1].replace(str(world["cwd"]), "<dir>")
            f.write(json.dumps([case_id, [a.replace(str(world["cwd"]), "<dir>") for a in args], line]) + "\n")
    _check(r, [e.format(**fill) for e in expect], before, world["earlier"])


def test_full_traceback_on_request(world):
    r = world["srv"].run([*XOR, "model.output=softmax"], cwd=world["cwd"], env={"HYDRA_FULL_ERROR": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_asked_on_cpu_machine(world):
    before = _hash_tree(world["earlier"])
    r = world["srv"].run(["trainer=gpu"], cwd=world["cwd"])
    _check(r, ["trainer=gpu", "trainer=cpu"], before, world["earlier"])


def test_plain_subprocess_bad_input(world):
    """A case without the fork server: the same line from a fresh `python train.py` (which imports no torch here)."""
    before = _hash_tree(world["earlier"])
    r = run_train(["model=mlp_xor", "optimizer.lr=abc"], cwd=world["cwd"])
    _check(r, ["optimizer.lr='abc'", "optimizer.lr=0.01"], before, world["earlier"])


def test_one_line_on_a_machine_with_slurm(world, tmp_path):
    """Where `srun` is on PATH (a Slurm login node), a bad input found once the Trainer exists (here at fit: the GAN
    refuses Lightning's clipping) is still one line: Lightning's "srun is available but not used" hint is not shown."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    before = _hash_tree(world["earlier"])
    r = run_train(["model=gan", "trainer=cpu", "logger=none", "trainer.gradient_clip_val=0.5"], cwd=world["cwd"],
                  env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    _check(r, ["trainer.gradient_clip_val=0.5 cannot be used with the GAN", "model.clip_grad_norm=0.5"], before,
           world["earlier"])
    assert r.stderr.strip().count("\n") == 0, r.stderr  # the one line and nothing else


@pytest.mark.slow
def test_plain_subprocess_checkpoint_of_another_model(world):
    before = _hash_tree(world["earlier"])
    r = run_train([*MLP, f"ckpt_path={world['ckpt']}"], cwd=world["cwd"])
    _check(r, ["does not match this model"], before, world["earlier"])


def test_catalogue_lists_every_case():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md").read_text()
    missing = [c[0] for c in CASES if f"`{c[0]}`" not in doc]
    assert not missing, f"docs/bad_inputs.md lacks {missing}"
    assert len(CASES) >= 25 and os.path.basename(__file__) == "test_bad_inputs.py"
