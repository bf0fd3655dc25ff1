"""`dlf-zoo eval`: the shipped weights re-evaluated on their test split (Lightning's Trainer.test on the data module the
card's run used, rebuilt from the card's data config), and the card's metadata checked: every test metric, num_params,
the file size and the sha256. A difference is a failure, like torchvision's test_schema_meta_validation."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

from dlf.errors import DlfError


def close(kind: str, key: str, got: float, want: float) -> bool:
    """Classifiers' accuracy exactly (the same correct count); everything else to 1e-6 relative (a CPU rerun of the
    same weights on the same tensors gives the same float32 numbers)."""
    if kind == "classifier" and key.endswith(("acc", "solved")):
        return got == want
    return abs(got - want) <= 1e-6 * abs(want) + 1e-12


def test_metrics(system, data_config: dict, data_dir: str) -> dict:
    """Trainer.test of `system` on the data module `data_config` names (data_dir filled in): the test metrics."""
    import lightning as L
    from hydra.utils import instantiate

    cfg = dict(data_config)
    if "data_dir" in cfg:
        cfg["data_dir"] = data_dir
    datamodule = instantiate(cfg)
    datamodule.prepare()  # a missing dataset is a DlfError here: the caller skips the entry
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*srun.*")  # Lightning's SLURM hint: this is one process
    if getattr(system, "classifier_cache", None):  # an image GAN's scorer: cached under the evaluator's data dir
        system.classifier_cache = str(Path(data_dir) / "gan_scorers")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    (out,) = trainer.test(system, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in out.items()}


def evaluate(name: str, data_dir: str) -> tuple[str, list[str]]:
    """(status, lines): status 'ok', 'failed', 'skipped' or 'no-data'; lines say what differs or why skipped."""
    from dlf import zoo

    if not zoo.shipped(name):
        return "skipped", [f"{name}: skipped, weights not shipped yet (`dlf-zoo train {name}` trains them)"]
    card = zoo.card(name)
    try:
        path = zoo.weights_path(name)
    except DlfError as e:
        return "failed", [str(e)]
    system = zoo.get_model(name)
    problems = []
    if path.stat().st_size != card["file_size"]:
        problems.append(f"file size {path.stat().st_size} != card's {card['file_size']}")
    if hashlib.sha256(path.read_bytes()).hexdigest() != card["sha256"]:
        problems.append("sha256 differs from the card's")
    n = sum(p.numel() for p in system.parameters())
    if n != card["num_params"]:
        problems.append(f"num_params {n} != card's {card['num_params']}")
    try:
        got = test_metrics(system, card["data_config"], data_dir)
    except DlfError as e:
        return "no-data", [f"{name}: skipped, its data is absent ({e})"]
    for key, want in card["test"].items():
        if key not in got:
            problems.append(f"{key} not measured (card: {want})")
        elif not close(card["kind"], key, got[key], want):
            problems.append(f"{key} = {got[key]!r}, card says {want!r}")
    if problems:
        return "failed", [f"{name}: FAILED: " + "; ".join(problems)]
    return "ok", [f"{name}: ok ({card['metric']} = {got[card['metric']]:.6g}, {n} params, sha256 checked)"]


def evaluate_all(names: list[str], data_dir: str) -> int:
    """Evaluate each name, one line each; exit status 1 if any failed (or, under CI=true, a shipped entry's data is
    absent)."""
    ci = os.environ.get("CI", "").lower() == "true"
    bad = 0
    for name in names:
        status, lines = evaluate(name, str(Path(data_dir).expanduser()))
        print("\n".join(lines), flush=True)
        bad += status == "failed" or (status == "no-data" and ci)
    return 1 if bad else 0
