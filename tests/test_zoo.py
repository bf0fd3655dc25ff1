"""The model zoo (issue 32): the registry (dlf.zoo), the shipped weights and their cards, `dlf-zoo` (list, show, eval,
export, train), hubconf.py and docs/zoo.md. Every shipped entry is re-evaluated against its card by `dlf-zoo eval --all`
through the front door; each classifier's predict on its raw test split reproduces the card's accuracy exactly."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_server import DATA_CACHE, ROOT, cli_env

import dlf
from dlf import zoo
from dlf.errors import DlfError
from dlf.zoo import cli as zoo_cli
from dlf.zoo import make, store
from dlf.zoo.render import card_markdown

SHIPPED = [n for n in zoo.list_models() if zoo.shipped(n)]
UNSHIPPED = [n for n in zoo.list_models() if not zoo.shipped(n)]
EXPECTED = {"mlp_xor", "mlp_mnist1d", "cnn1d_mnist1d", "rnn_mnist1d", "lstm_mnist1d", "lstm_adding", "lstm_text",
            "cnn_digits", "cnn_fashion", "gan_ring", "gan_grid", "dcgan_digits", "dcgan_fashion"}


def dlf_zoo(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`dlf-zoo ...` as a user types it (the console script's entry point, this checkout's src first)."""
    code = "import sys; from dlf.zoo.cli import cli; sys.argv[0] = 'dlf-zoo'; cli()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=cli_env(cwd, env), capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A copy of the shipped weights and cards that a test may damage (the package's own files stay as they are)."""
    copy = tmp_path / "weights"
    shutil.copytree(store.WEIGHTS, copy)
    monkeypatch.setattr(store, "WEIGHTS", copy)
    return copy


def test_the_registry_names_every_headline_model_and_ships_some():
    assert set(zoo.list_models()) == EXPECTED
    assert {"mlp_xor", "mlp_mnist1d", "rnn_mnist1d", "lstm_text"} <= set(SHIPPED)
    total = sum((store.WEIGHTS / f"{n}.ckpt").stat().st_size for n in SHIPPED)
    assert total <= 16e6, total
    for name in SHIPPED:
        card = zoo.card(name)
        assert card["sha256"] and card["file_size"] == (store.WEIGHTS / f"{name}.ckpt").stat().st_size
        assert card["command"].startswith("python train.py ") and "seed=1" in card["command"]
        assert card["metric"] in card["test"] and card["num_params"] > 0 and card["flops_one_example"] > 0
        assert set(card["versions"]) == {"torch", "lightning", "hydra"} and card["licence"]["data"]
        assert card["train"]["wall_s"] > 0 and card["train"]["cpu_s"] > 0 and card["commit"] and card["date"]


def test_dlf_zoo_eval_all_passes_against_every_card(tmp_path):
    """The metadata is tested like torchvision's: each shipped model re-evaluated on its test split, its num_params,
    file size and sha256 compared with its card; the others are skipped with one line each."""
    r = dlf_zoo(["eval", "--all", "--data-dir", str(DATA_CACHE)], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(EXPECTED) and "Traceback" not in r.stderr
    for name in SHIPPED:
        assert f"{name}: ok (" in r.stdout, r.stdout
    for name in UNSHIPPED:
        assert f"{name}: skipped, weights not shipped yet (`dlf-zoo train {name}` trains them)" in lines


def test_eval_fails_when_a_card_s_number_differs(weights, capsys):
    card = json.loads((weights / "mlp_xor.json").read_text())
    card["num_params"] += 1
    card["test"]["test/loss"] *= 1.01
    (weights / "mlp_xor.json").write_text(json.dumps(card))
    assert zoo_cli.main(["eval", "mlp_xor", "--data-dir", str(DATA_CACHE)]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith("mlp_xor: FAILED: ") and "num_params 21 != card's 22" in line and "test/loss" in line


@pytest.mark.parametrize("name", ["mlp_mnist1d", "rnn_mnist1d", "cnn1d_mnist1d", "lstm_mnist1d"])
def test_mnist1d_classifiers_predict_on_the_raw_test_split_scores_the_card_exactly(name):
    from dlf.data.mnist1d import load_or_make

    model = zoo.get_model(name)
    x = load_or_make(DATA_CACHE, 5000, 42)["x_test"]  # what the mnist1d package makes, no dlf transform
    y = load_or_make(DATA_CACHE, 5000, 42)["y_test"]
    idx = zoo.test_split(name)
    _correct_is_the_card_s(name, model.predict(x[idx].numpy()), y[idx])


def _correct_is_the_card_s(name: str, predicted, truth) -> None:
    import numpy as np

    correct = int((np.asarray(predicted) == np.asarray(truth)).sum())
    acc = zoo.card(name)["test"]["test/acc"]  # logged as float32: the same count of correct answers
    assert correct == round(acc * len(truth)) and abs(correct / len(truth) - acc) < 1e-6, (correct, acc)


def test_cnn_digits_classifies_raw_load_digits_at_the_card_s_accuracy():
    """The issue's three lines: `m = dlf.zoo.get_model("cnn_digits"); m.predict(images)` on load_digits()'s raw 8x8
    images (0-16) of its test split, single image and batch alike."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    idx = zoo.test_split("cnn_digits")
    m = dlf.zoo.get_model("cnn_digits")
    predicted = m.predict(digits.images[idx])
    _correct_is_the_card_s("cnn_digits", predicted, digits.target[idx])
    assert int(m.predict(digits.images[idx[0]])) == int(predicted[0])


def test_cnn_fashion_classifies_raw_uint8_test_images_at_the_card_s_accuracy():
    """Raw 28x28 uint8 Fashion-MNIST test images (torchvision's order) -> classes: the card's test accuracy exactly.
    Debian's dataset-fashion-mnist provides the files (.ci/run installs it); without them, skipped except under CI."""
    import os

    from dlf.data.vision import load_torchvision

    try:
        *_, x_test, y_test = load_torchvision("fashion_mnist", DATA_CACHE, False, "/usr/share/datasets/fashion-mnist")
    except DlfError as e:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(str(e))
    idx = zoo.test_split("cnn_fashion")
    _correct_is_the_card_s("cnn_fashion", zoo.get_model("cnn_fashion").predict(x_test[idx]), y_test[idx])


def test_lstm_adding_s_predict_on_its_test_split_gives_the_card_s_mse():
    """The regressor's predict on the (N, T, 2) sequences of its test split (zoo.test_split: the generated test set,
    rebuilt from the card's data config) gives the card's test MSE to 1e-6."""
    from hydra.utils import instantiate

    card = zoo.card("lstm_adding")
    dm = instantiate(dict(card["data_config"]))
    dm.prepare()
    x, y = dm.test
    idx = torch.as_tensor(zoo.test_split("lstm_adding"))
    pred = torch.as_tensor(zoo.get_model("lstm_adding").predict(x[idx])).reshape(-1)
    mse = float(((pred - y[idx].reshape(-1)) ** 2).mean())
    assert abs(mse - card["test"]["test/mse"]) <= 1e-6, (mse, card["test"]["test/mse"])


def test_lstm_adding_from_torch_hub_sums_fresh_sequences():
    """`torch.hub.load(<clone>, "lstm_adding", source="local")` and its predict on 1,000 fresh adding sequences
    (T = 100, a seed of their own, never seen in training): MSE < 0.01 (always answering 1: 0.167)."""
    from dlf.data.adding import make_adding

    x, y = make_adding(1000, 100, torch.Generator().manual_seed(2026))
    model = torch.hub.load(str(ROOT), "lstm_adding", source="local")
    mse = float(((torch.as_tensor(model.predict(x)).reshape(-1) - y.reshape(-1)) ** 2).mean())
    assert mse < 0.01, mse


def test_xor_from_the_zoo_solves_xor_as_its_card_says():
    model = zoo.get_model("mlp_xor")
    p = model.predict([[0, 0], [0, 1], [1, 0], [1, 1]])
    assert [round(float(v)) for v in p] == [0, 1, 1, 0] and zoo.card("mlp_xor")["test"]["test/solved"] == 1.0
    assert list(zoo.test_split("mlp_xor")) == [0, 1, 2, 3]


def test_text_lstm_s_perplexity_is_the_card_s_to_its_digits():
    from dlf.zoo.evaluate import test_metrics

    card = zoo.card("lstm_text")
    got = test_metrics(zoo.get_model("lstm_text"), card["data_config"], str(DATA_CACHE))
    assert f"{got['test/ppl']:.6g}" == f"{card['test']['test/ppl']:.6g}"
    assert zoo.get_model("lstm_text").sample("The", length=20, seed=0).startswith("The")


def test_gan_ring_s_scores_of_its_fixed_test_noise_are_the_card_s():
    """The ring GAN from the zoo, its G on the checkpoint's fixed test z, scored against the ring's centres: the card's
    modes and high-quality share, to the card's digits; sample(n, seed) in the data's units, the same for a seed."""
    model = zoo.get_model("gan_ring")
    card = zoo.card("gan_ring")
    with torch.no_grad():
        stats = model.score(model.G_eval(model.test_z), "test")
    for key in ("test/modes", "test/high_quality"):
        assert f"{stats[key]:.6g}" == f"{card['test'][key]:.6g}", key
    assert model.sample(64, seed=0).shape == (64, 2) and torch.equal(model.sample(64, seed=0), model.sample(64, seed=0))


def test_get_model_never_reads_a_dataset(monkeypatch):
    from dlf.data.base import InMemoryDataModule

    def refuse(*a, **k):
        raise AssertionError("get_model read a dataset")

    monkeypatch.setattr(InMemoryDataModule, "prepare", refuse)
    for name in SHIPPED:
        assert not zoo.get_model(name).training
        assert not zoo.get_model(name, pretrained=False).training


def test_pretrained_false_is_the_same_architecture_with_fresh_weights():
    for name in SHIPPED:
        trained, fresh = zoo.get_model(name).state_dict(), zoo.get_model(name, pretrained=False).state_dict()
        assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in fresh.items()}, name
        assert any(not torch.equal(trained[k], fresh[k]) for k in trained), name


def test_an_entry_not_trained_yet_says_so_in_one_line_and_builds_fresh(weights):
    """An entry whose card is not in the package (every entry ships now: cnn_digits's card and weights are taken out of
    a copy of the package's weights) is one line naming `dlf-zoo train`, and pretrained=False still builds it."""
    name = "cnn_digits"
    (weights / f"{name}.json").unlink()
    (weights / f"{name}.ckpt").unlink()
    assert not zoo.shipped(name)
    with pytest.raises(DlfError) as e:
        zoo.get_model(name)
    text = str(e.value)
    assert "\n" not in text and "not shipped yet" in text and f"`dlf-zoo train {name}`" in text
    model = zoo.get_model(name, pretrained=False)
    assert model.predict_proba(torch.zeros(2, 8, 8)).shape == (2, 10)
    assert zoo.card(name)["shipped"] is False and zoo.card(name)["command"] == "python train.py model=cnn seed=1 trainer=cpu"


def test_a_damaged_or_missing_weights_file_is_one_line(weights, capsys):
    path = weights / "mlp_xor.ckpt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    for call in (lambda: zoo.get_model("mlp_xor"), lambda: dlf.load("mlp_xor")):
        with pytest.raises(DlfError, match=r"mlp_xor's weights file .* is damaged \(sha256 ") as e:
            call()
        assert "\n" not in str(e.value) and "dlf-zoo train mlp_xor" in str(e.value)
    assert zoo_cli.main(["eval", "mlp_xor"]) == 1
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and "is damaged" in out
    path.unlink()
    with pytest.raises(DlfError, match=r"mlp_xor's weights file .* is missing: reinstall dlf"):
        zoo.get_model("mlp_xor")


def test_dlf_load_takes_a_zoo_name():
    a, b = dlf.load("mlp_xor"), zoo.get_model("mlp_xor")
    assert type(a) is type(b) and all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    with pytest.raises(DlfError, match="no_such_model"):
        dlf.load("no_such_model")


def test_export_writes_a_hugging_face_style_folder_that_dlf_load_reads(tmp_path, capsys):
    out = tmp_path / "mlp_mnist1d"
    assert zoo_cli.main(["export", "mlp_mnist1d", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (out / "README.md").read_text() == card_markdown(zoo.card("mlp_mnist1d"), "#")
    assert json.loads((out / "config.json").read_text())["card"]["sha256"] == zoo.card("mlp_mnist1d")["sha256"]
    back, orig = dlf.load(out), zoo.get_model("mlp_mnist1d")
    assert type(back) is type(orig) and not back.training
    assert all(torch.equal(v, orig.state_dict()[k]) for k, v in back.state_dict().items())
    x = torch.randn(5, 40)
    assert torch.equal(back.predict(x), orig.predict(x))
    (out / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(DlfError, match="not a readable dlf-zoo export"):
        dlf.load(out)


def test_list_and_show(tmp_path):
    r = dlf_zoo(["list"], tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("| name | task | metric (test) | params | size |")
    assert all(f"| {n} |" in r.stdout for n in EXPECTED)
    r = dlf_zoo(["show", "mlp_xor"], tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == card_markdown(zoo.card("mlp_xor")).strip()
    r = dlf_zoo(["show", "mlp_xoor"], tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("dlf-zoo: error: no model 'mlp_xoor': pick one of mlp_xor, ")
    assert len(r.stderr.strip().splitlines()) == 1
    r = dlf_zoo(["eval"], tmp_path)
    assert r.returncode == 2 and "give one model's name or --all" in r.stderr and "Traceback" not in r.stderr


def _hubconf():
    spec = importlib.util.spec_from_file_location("dlf_hubconf", ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hubconf_s_callables_are_the_registry_s_names_with_their_cards():
    hub = _hubconf()
    public = {k for k, v in vars(hub).items() if callable(v) and not k.startswith("_")}
    assert public == set(zoo.list_models())
    assert hub.dependencies and "torch" in hub.dependencies
    for name in zoo.list_models():
        assert getattr(hub, name).__doc__ == card_markdown(zoo.card(name))
    assert sys.path[0] == str(ROOT / "src")


def test_torch_hub_load_from_the_clone(tmp_path):
    model = torch.hub.load(str(ROOT), "mlp_xor", source="local")
    assert [round(float(v)) for v in model.predict([[0, 0], [0, 1], [1, 0], [1, 1]])] == [0, 1, 1, 0]
    fresh = torch.hub.load(str(ROOT), "mlp_xor", source="local", pretrained=False)
    assert type(fresh) is type(model)


def test_docs_zoo_md_is_what_the_registry_writes(tmp_path):
    """docs/zoo.md is the registry's page and every shipped model's card shows its figure, drawn from the weights it
    ships (the PNG's recorded sha256 is the card's); an entry not trained yet has no figure and says so."""
    from dlf.zoo.figures import drawn_from

    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "zoo_docs.py"), "--check"], cwd=tmp_path,
                       env=cli_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + " (run python scripts/zoo_docs.py)"
    assert "docs/zoo.md" in (ROOT / "README.md").read_text()
    page = (ROOT / "docs" / "zoo.md").read_text()
    for name in SHIPPED:
        card = page[page.index(f"## {name}\n"):]
        card = card[:card.find("\n## ", 1) if "\n## " in card[1:] else None]
        assert f"](figures/zoo_{name}.png)" in card, name
        assert drawn_from(ROOT / "docs" / "figures" / f"zoo_{name}.png") == zoo.card(name)["sha256"], name
    for name in UNSHIPPED:
        assert f"figures/zoo_{name}.png" not in page and not (ROOT / "docs" / "figures" / f"zoo_{name}.png").exists()


def _zoo_docs():
    spec = importlib.util.spec_from_file_location("zoo_docs", ROOT / "scripts" / "zoo_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_docs_check_names_a_missing_figure_or_one_drawn_from_other_weights(tmp_path, monkeypatch, capsys):
    docs = _zoo_docs()
    figures = tmp_path / "figures"
    shutil.copytree(ROOT / "docs" / "figures", figures)
    monkeypatch.setattr(docs, "FIGURES", figures)
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    assert docs.stale_figures() == [] and docs.main(["--check"]) == 0
    (figures / "zoo_mlp_xor.png").unlink()
    shutil.copy(figures / "zoo_gan_ring.png", figures / "zoo_mlp_mnist1d.png")  # another model's weights drew it
    assert docs.stale_figures() == ["figures/zoo_mlp_xor.png is missing",
                                    "figures/zoo_mlp_mnist1d.png is drawn from other weights"]
    assert docs.main(["--check"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("run python scripts/zoo_docs.py") and "zoo_mlp_xor.png" in err


def _labelled(fig, name: str) -> None:
    """The suptitle names the model and what is shown; every drawn panel has a title or both axis labels."""
    title = fig.get_suptitle()
    assert title.startswith(f"{name}: ") and len(title) > len(name) + 10, title
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.axison]
    for ax in panels:
        assert ax.get_title() or (ax.get_xlabel() and ax.get_ylabel()), (name, ax)
    assert any(ax.get_xlabel() for ax in panels) or name.startswith("dcgan") or name.startswith("cnn_"), name


def test_every_shipped_model_s_figure_is_made_labelled_small_and_deterministic(tmp_path):
    """dlf.zoo.figures draws each shipped model's figure from its weights (offline data only): labelled, under
    100 kB, the weights' sha256 recorded in the PNG, the same bytes when drawn again (fixed seeds)."""
    from dlf.callbacks.figures import plt
    from dlf.zoo import figures

    for name in SHIPPED:
        fig = figures.figure(name, zoo.get_model(name), DATA_CACHE)
        _labelled(fig, name)
        plt.close(fig)
        path = figures.write(name, tmp_path, DATA_CACHE)
        assert path.name == f"zoo_{name}.png" and 1_000 < path.stat().st_size <= 100_000, (name, path.stat().st_size)
        assert figures.drawn_from(path) == zoo.card(name)["sha256"]
    again = figures.write("gan_ring", tmp_path / "again", DATA_CACHE)
    assert again.read_bytes() == (tmp_path / "zoo_gan_ring.png").read_bytes()
    legends = {n: [ax.get_legend() for ax in figures.figure(n, zoo.get_model(n), DATA_CACHE).axes] for n in ("gan_ring",)}
    assert any(legends["gan_ring"])
    plt.close("all")


LATER = ["cnn1d_mnist1d", "lstm_mnist1d", "lstm_adding", "cnn_digits", "cnn_fashion", "gan_grid", "dcgan_fashion"]


@pytest.mark.parametrize("name", LATER)
def test_an_entry_not_shipped_yet_has_its_figure_code_ready(name):
    """The figures of the entries whose weights come later (MNIST-1D signals, digits and Fashion images with their
    classes, the adding problem's sums, the grid GAN's points, the Fashion DCGAN's grid) draw with the same
    architecture's fresh weights, so shipping the weights is all that is left."""
    from dlf.callbacks.figures import plt
    from dlf.zoo import figures

    if name.endswith("fashion") and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Fashion-MNIST is absent (Debian's dataset-fashion-mnist)")
    fig = figures.figure(name, zoo.get_model(name, pretrained=False), DATA_CACHE)
    _labelled(fig, name)
    ax = fig.axes[0]
    if name == "lstm_adding":
        assert ax.get_xlabel() == "true sum" and ax.get_ylabel() == "predicted sum" and ax.get_legend()
        assert "T = 100" in ax.get_legend().get_texts()[0].get_text()
    elif name == "gan_grid":
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["generated", "real", "mode centres"]
    elif name == "dcgan_fashion":
        assert ax.get_title() == "64 samples of G (seed 0)" and ax.get_images()[0].get_array().shape[:2] == (233, 233)
    else:
        assert all(a.get_title().startswith("pred ") and " / true " in a.get_title() for a in fig.axes)
    plt.close(fig)


def test_dlf_zoo_train_reproduces_the_shipped_card(weights, tmp_path):
    """`dlf-zoo train mlp_xor` runs the card's command (python train.py ..., one CPU thread) and writes weights and a
    card whose test metrics and num_params are the shipped card's: the same seed on CPU gives the same model."""
    shipped = json.loads((weights / "mlp_xor.json").read_text())
    (weights / "mlp_xor.json").unlink()
    card = make.train("mlp_xor", tmp_path / "work", str(DATA_CACHE))
    assert card["test"]["test/solved"] == shipped["test"]["test/solved"] == 1.0 and card["num_params"] == 21
    # the same floats on this machine (docs/zoo.md's cards were trained here); another CPU may round the last bits
    assert abs(card["test"]["test/loss"] - shipped["test"]["test/loss"]) <= 1e-5 * shipped["test"]["test/loss"]
    assert card["command"] == shipped["command"] and (tmp_path / "work" / "mlp_xor" / "result.json").is_file()
    assert json.loads((weights / "mlp_xor.json").read_text())["sha256"] == make.sha256(weights / "mlp_xor.ckpt")


def test_absent_data_is_skipped_in_one_line_and_fails_under_ci(monkeypatch, capsys):
    """An entry whose dataset is absent (Fashion-MNIST without Debian's package) is skipped with one line; under
    CI=true a shipped entry's absent data fails the eval."""
    from dlf.zoo import evaluate

    def absent(*a, **k):
        raise DlfError("Fashion-MNIST is not in /usr/share/datasets/fashion-mnist: apt install dataset-fashion-mnist")

    monkeypatch.setattr(evaluate, "test_metrics", absent)
    monkeypatch.delenv("CI", raising=False)
    assert evaluate.evaluate_all(["mlp_xor", "cnn_fashion"], str(DATA_CACHE)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("mlp_xor: skipped, its data is absent (Fashion-MNIST is not in") and len(out) == 2
    monkeypatch.setenv("CI", "true")
    assert evaluate.evaluate_all(["mlp_xor"], str(DATA_CACHE)) == 1
    assert evaluate.evaluate_all(["cnn_fashion"], str(DATA_CACHE)) == 0 or "cnn_fashion" in SHIPPED


def test_readme_s_zoo_example_runs():
    """README's "The model zoo" code, executed as written."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("### The model zoo"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(code.replace("m.predict(", "out = m.predict("), scope)  # noqa: S102 - the README's own lines
    assert [round(float(v)) for v in scope["out"]] == [1, 0]


def test_every_shipped_entry_exports_and_loads_back(tmp_path):
    """Every family the zoo ships (MLP, RNN, LSTM language model, GANs) round-trips through config.json +
    model.safetensors: the same class, the same tensors, buffers included (a GAN's fixed test noise)."""
    for name in SHIPPED:
        zoo_cli.export(name, tmp_path / name)
        back, orig = dlf.load(tmp_path / name), zoo.get_model(name)
        assert type(back) is type(orig) and not back.training, name
        state = orig.state_dict()
        assert back.state_dict().keys() == state.keys(), name
        assert all(torch.equal(v, state[k]) for k, v in back.state_dict().items()), name


def test_zoo_docs_says_in_one_line_when_a_figure_s_data_is_absent(monkeypatch, capsys):
    """A shipped model whose data is absent (Fashion-MNIST without Debian's package) stops the script with one line,
    exit 2, before anything is written."""
    from dlf.zoo import figures

    docs = _zoo_docs()

    def absent(*a, **k):
        raise DlfError("data=fashion_mnist: files not found in data/FashionMNIST/raw")

    monkeypatch.setattr(figures, "write", absent)
    monkeypatch.setattr(docs, "PAGE", Path("/nonexistent/zoo.md"))  # a write would fail loudly
    assert docs.main(["--data-dir", str(DATA_CACHE)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"zoo_docs: error: {SHIPPED[0]}'s figure: data=fashion_mnist: files not found in data/FashionMNIST/raw"
