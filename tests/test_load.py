"""A trained model comes back, with its preprocessing: Lightning's `<System>.load_from_checkpoint(path)` for every family
(from checkpoints written by this dlf, whose hyper-parameters carry the net's config and the data's facts, and from dlf
0.1's run dirs in tests/data/ckpt_v0_1, whose facts come from the run dir), `dlf.load(source)`, and `model.predict(raw)`
on inputs in the data's own units (raw 0-16 digits, uint8 Fashion-MNIST, MNIST-1D signals, adding sequences, XOR pairs,
text), with `sample` for the GANs and the language model. Each run is trained here through `python train.py`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_server import DATA_CACHE, ROOT, shared_server

import dlf
from dlf.errors import DlfError
from dlf.run.checkpoint import load_run, load_system
from dlf.systems.base import System
from dlf.systems.cnn import CNNSystem
from dlf.systems.gan import GANSystem
from dlf.systems.mlp import MLPSystem
from dlf.systems.sequence import SequenceSystem

V0_1 = ROOT / "tests" / "data" / "ckpt_v0_1"
QUIET = ["trainer=cpu", "logger=none", "callbacks.model_summary=null", f"paths.data_dir={DATA_CACHE}"]
LIMIT = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=2"]
# family -> (its class, the command's arguments): small runs, each a few seconds
RUNS = {
    "mlp_xor": (MLPSystem, ["model=mlp_xor", "data.repeats=50", "trainer.max_epochs=4"]),
    "mlp": (MLPSystem, ["model=mlp", "model.net.hidden=[16]", "trainer.max_epochs=1", *LIMIT]),
    "rnn": (SequenceSystem, ["model=rnn", "model.net.hidden_size=16", "trainer.max_epochs=1", *LIMIT]),
    "lstm": (SequenceSystem, ["model=lstm", "data=adding", "data.seq_len=20", "model.net.hidden_size=16",
                              "data.n_train=500", "trainer.max_epochs=1", *LIMIT]),
    "lstm_text": (SequenceSystem, ["experiment=lstm_text", "model.net.hidden_size=16", "data.corpus_chars=20000",
                                   "trainer.max_epochs=1", *LIMIT]),
    "cnn": (CNNSystem, ["model=cnn", "callbacks.cnn_figures=null", "trainer.max_epochs=3"]),
    "cnn1d": (CNNSystem, ["model=cnn1d", "callbacks.cnn_figures=null", "trainer.max_epochs=1", *LIMIT]),
    "gan": (GANSystem, ["model=gan", "model.net.hidden=[16,16]", "model.n_eval=200", "trainer.max_epochs=1",
                        "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]),
    "cnn_fashion": (CNNSystem, ["model=cnn", "data=fashion_mnist", "data.train_size=1000", "callbacks.cnn_figures=null",
                                "trainer.max_epochs=1", "trainer.limit_val_batches=2"]),
    "dcgan": (GANSystem, ["model=dcgan", "model.n_eval=200", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
                          "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]),
}
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """family -> its run dir, each trained once by `python train.py ...` (lazily: a test asks for the ones it needs)."""
    root, made = tmp_path_factory.mktemp("load_runs"), {}

    def run(family: str) -> Path:
        if family not in made:
            out = root / family
            r = shared_server().run([*RUNS[family][1], *QUIET, f"hydra.run.dir={out}"], cwd=root)
            assert r.returncode == 0, r.stderr[-3000:]
            made[family] = out
        return made[family]

    return run


def result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


def _loaded(run: Path, cls: type, name: str = "best.ckpt"):
    """cls.load_from_checkpoint of the run's checkpoint, checked: the class, eval mode, the checkpoint's weights."""
    path = run / "checkpoints" / name
    model = cls.load_from_checkpoint(path)
    assert type(model) is cls and not model.training
    state = torch.load(path, weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    return model


# ---- deliverable 1: Lightning's way back, for every family ---------------------------------------------------------
@pytest.mark.parametrize("family", list(RUNS))
def test_load_from_checkpoint_of_this_dlf(family, runs):
    if family == "cnn_fashion" and not FASHION.is_dir():
        pytest.skip("Fashion-MNIST needs Debian's dataset-fashion-mnist")
    cls = RUNS[family][0]
    run = runs(family)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # plain types only
    hp = ckpt["hyper_parameters"]
    assert hp["_target_"] == f"{cls.__module__}.{cls.__qualname__}" and hp["facts"]["name"]
    assert "_target_" in hp["net"]
    model = _loaded(run, cls, "last.ckpt")
    assert System.load_from_checkpoint(run / "checkpoints" / "last.ckpt").state_dict().keys() == model.state_dict().keys()
    reference = load_system(run)  # the run dir's loader (its config, built by dlf.run.build) agrees
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in _loaded(run, cls).state_dict().items())


@pytest.mark.parametrize("family", ["mlp_xor", "mlp", "rnn", "lstm", "cnn", "gan"])
def test_load_from_checkpoint_of_dlf_0_1(family, tmp_path, monkeypatch):
    monkeypatch.setenv("DLF_ROOT", str(DATA_CACHE.parent))  # its config's data dir: ${DLF_ROOT}/data/
    run = tmp_path / family
    shutil.copytree(V0_1 / family, run)
    path = run / "checkpoints" / "last.ckpt"
    assert "hyper_parameters" not in torch.load(path, weights_only=True)
    model = System.load_from_checkpoint(path)
    assert type(model).__name__ == {"mlp_xor": "MLPSystem", "mlp": "MLPSystem", "cnn": "CNNSystem",
                                    "gan": "GANSystem"}.get(family, "SequenceSystem")
    assert not model.training
    reference = load_system(path)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())
    best = load_system(run).state_dict()  # a run dir: its best.ckpt
    assert all(torch.equal(v, best[k]) for k, v in dlf.load(run).state_dict().items())


def test_an_old_checkpoint_outside_its_run_dir_is_one_line(tmp_path):
    lonely = tmp_path / "last.ckpt"
    shutil.copy(V0_1 / "mlp_xor" / "checkpoints" / "last.ckpt", lonely)
    with pytest.raises(DlfError, match=r"holds no hyper-parameters .* load it from its run dir, or pass net= and facts="):
        MLPSystem.load_from_checkpoint(lonely)


def test_another_family_s_checkpoint_is_refused_in_one_line(runs):
    path = runs("mlp_xor") / "checkpoints" / "last.ckpt"
    with pytest.raises(DlfError, match=r"is a checkpoint of dlf.systems.mlp.MLPSystem, not of dlf.systems.cnn.CNNSystem"):
        CNNSystem.load_from_checkpoint(path)


def test_a_tampered_target_in_the_hyper_parameters_is_refused_with_nothing_run(runs, tmp_path):
    ckpt = torch.load(runs("mlp_xor") / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["net"]["_target_"] = "shutil.rmtree"
    torch.save(ckpt, tmp_path / "tampered.ckpt")
    with pytest.raises(DlfError, match=r"tampered.ckpt cannot be built at net: Target 'shutil.rmtree' is blocklisted"):
        dlf.load(tmp_path / "tampered.ckpt")


def test_load_from_checkpoint_keeps_lightning_s_arguments(runs):
    """map_location, and keyword arguments that override a stored hyper-parameter (Lightning's documented use)."""
    path = runs("mlp_xor") / "checkpoints" / "last.ckpt"
    model = MLPSystem.load_from_checkpoint(path, map_location=torch.device("cpu"), output="sigmoid")
    assert model.device.type == "cpu" and model.output == "sigmoid"
    assert model.hparams["facts"]["name"] == "xor"  # saved again: a Trainer that trains it on keeps them


# ---- deliverable 2: dlf.load ----------------------------------------------------------------------------------------
def test_dlf_load_takes_a_run_dir_or_a_checkpoint_file(runs):
    run = runs("mlp_xor")
    a, b = dlf.load(run), dlf.load(run / "checkpoints" / "last.ckpt", device="cpu")
    assert type(a) is type(b) is MLPSystem and not a.training
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(v, best[k]) for k, v in a.state_dict().items())  # a run dir: its best checkpoint


def test_dlf_load_of_a_wrong_source_is_one_line_naming_what_was_tried(tmp_path):
    with pytest.raises(DlfError) as e:
        dlf.load("no_such_model")
    text = str(e.value)
    assert "\n" not in text and "ckpt_path" not in text
    assert f"{tmp_path.cwd() / 'no_such_model'}" in text and "zoo model of that name" in text
    (tmp_path / "empty").mkdir()
    with pytest.raises(DlfError, match="has no checkpoints/best.ckpt nor checkpoints/last.ckpt"):
        dlf.load(tmp_path / "empty")
    (tmp_path / "bad.ckpt").write_bytes(b"\0" * 64)
    with pytest.raises(DlfError, match=r"bad.ckpt is damaged \(it is all zero bytes\)"):
        dlf.load(tmp_path / "bad.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(DlfError, match="is not a readable checkpoint"):
        dlf.load(tmp_path / "text.ckpt")


# ---- deliverable 3: predict on the data's own units ------------------------------------------------------------------
def test_xor_predict_gives_probabilities(runs):
    model = dlf.load(runs("mlp_xor"))
    pairs = [[0, 0], [0, 1], [1, 0], [1, 1]]
    p = model.predict(pairs)
    assert p.shape == (4,)
    torch.testing.assert_close(p, model(torch.tensor(pairs, dtype=torch.float32))[:, 0], rtol=0, atol=1e-7)
    assert isinstance(model.predict([0, 1]), float) and abs(model.predict([0, 1]) - float(p[1])) < 1e-7
    assert model.predict_proba(pairs).shape == (4,)


def test_digits_cnn_predict_on_raw_digits_reproduces_the_run_s_test_accuracy(runs):
    """Raw load_digits() images (0-16) of the run's test split, classified by predict, score exactly the run's own
    test accuracy (the run tested best.ckpt on the data module's scaled tensors)."""
    from sklearn.datasets import load_digits

    from dlf.data.digits import DigitsDataModule

    run = runs("cnn")
    digits = load_digits()
    _, _, test = DigitsDataModule().split(digits.target)
    model = dlf.load(run)
    pred = model.predict(digits.images[test])
    correct = int((pred == torch.as_tensor(digits.target[test])).sum())
    acc = result(run)["test"]["test/acc"]
    assert correct == round(acc * len(test)), (correct, acc, len(test))
    assert abs(correct / len(test) - acc) < 1e-6
    one = model.predict(digits.images[test[0]])  # one raw 8x8 digit -> its class
    assert isinstance(one, int) and one == int(pred[0])
    assert model.predict_proba(digits.images[test[:5]]).shape == (5, 10)


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST needs Debian's dataset-fashion-mnist")
def test_fashion_cnn_predict_on_raw_uint8_images_reproduces_the_run_s_test_accuracy(runs):
    from dlf.data.vision import load_torchvision

    run = runs("cnn_fashion")
    _, _, images, labels = load_torchvision("fashion_mnist", DATA_CACHE, False, FASHION)
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    model = dlf.load(run)
    pred = model.predict(images)
    acc = result(run)["test"]["test/acc"]
    assert int((pred == torch.as_tensor(labels)).sum()) == round(acc * len(labels))
    assert isinstance(model.predict(images[0]), int)


def test_mnist1d_models_predict_a_class_and_probabilities(runs):
    """The MLP, the RNN and the 1-D CNN on a raw MNIST-1D signal (length 40): predict agrees with the model run on the
    data module's own test tensors, for one signal and for a batch."""
    for family in ("mlp", "rnn", "cnn1d"):
        loaded = load_run(runs(family), data=True)
        x, _ = loaded.datamodule.test
        model = dlf.load(runs(family))
        probs = model.predict_proba(x[:50])
        assert probs.shape == (50, 10)
        torch.testing.assert_close(probs.sum(1), torch.ones(50), rtol=0, atol=1e-5)
        with torch.no_grad():
            z = loaded.system(x[:50])
        assert torch.equal(model.predict(x[:50]), z.argmax(-1)), family
        assert model.predict(x[0]) == int(z[0].argmax()) and model.predict_proba(x[0].numpy()).shape == (10,)


def test_adding_lstm_predict_gives_sums(runs):
    """(N, T, 2) sequences -> their predicted sums [N]; on the run's test set the MSE is the run's test/mse."""
    run = runs("lstm")
    loaded = load_run(run, ckpt="best", data=True)
    x, y = loaded.datamodule.test
    model = dlf.load(run)
    sums = model.predict(x)
    assert sums.shape == (len(x),)
    assert abs(float(((sums - y[:, 0]) ** 2).mean()) - result(run)["test"]["test/mse"]) < 1e-6
    assert isinstance(model.predict(x[0]), float) and abs(model.predict(x[0]) - float(sums[0])) < 1e-6
    assert model.predict(x[:3, :50]).shape == (3,)  # any length T: an LSTM reads on


def test_text_lstm_predicts_the_next_character_and_samples(runs, capsys):
    from dlf.tools import sample as dlf_sample

    run = runs("lstm_text")
    model = dlf.load(run)
    dist = model.predict("The sun rises in the")
    assert list(dist) and set(dist) == set(model.facts.vocab) and abs(sum(dist.values()) - 1) < 1e-5
    assert list(dist.values()) == sorted(dist.values(), reverse=True)
    probs, _ = model.next_char_probs("The sun rises in the")
    assert abs(dist[model.facts.vocab[int(probs.argmax())]] - float(probs.max())) < 1e-7
    text = model.sample("The", length=30, seed=3)
    assert text.startswith("The") and len(text) == 33 and text == model.sample("The", length=30, seed=3)
    assert dlf_sample.main([str(run), "--prompt", "The", "--length", "30", "--seed", "3"]) == 0
    assert text in capsys.readouterr().out  # dlf-sample prints the same sample
    with pytest.raises(DlfError, match="never saw"):
        model.predict("The \x07")


def test_gans_sample_in_the_data_s_units(runs):
    ring = dlf.load(runs("gan"))
    points = ring.sample(64, seed=0)
    assert points.shape == (64, 2) and torch.equal(points, ring.sample(64, seed=0))
    torch.testing.assert_close(points, ring.generate(64, torch.Generator().manual_seed(0)), rtol=0, atol=0)
    digits = dlf.load(runs("dcgan"))
    images = digits.sample(16, seed=1)
    assert images.shape == (16, 1, 8, 8) and 0 <= float(images.min()) and float(images.max()) <= 1


def test_inputs_of_another_shape_are_one_line(runs):
    model = dlf.load(runs("cnn"))
    with pytest.raises(DlfError, match=r"inputs of shape \[3, 7\] do not fit data=digits: give one sample \[8, 8\]"):
        model.predict(np.zeros((3, 7)))


def test_readme_s_loading_example_runs(runs):
    """The guide's "Loading a trained model" code (docs/using.md), executed as written with its run dir filled in."""
    text = (ROOT / "docs" / "using.md").read_text()
    section = text[text.index("## Loading a trained model"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "<run>" in code
    scope: dict = {}
    exec(code.replace("logs/cnn/runs/<run>", str(runs("cnn"))), scope)  # noqa: S102 - the page's own lines
    assert len(scope["classes"]) == 10
