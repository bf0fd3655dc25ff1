"""`dlf-zoo train NAME`: run the entry's own `train.py` command (seed 1, trainer=cpu, one thread), then ship its best
checkpoint into the package (dlf/zoo/weights/NAME.ckpt: state_dict + hyper-parameters only, no optimizer state, loads
with weights_only=True) and write its card (NAME.json). Cards change only through here."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from dlf.errors import DlfError
from dlf.faults import atomic_write, atomic_write_text
from dlf.zoo import store
from dlf.zoo.entries import ENTRIES, SEED

ROOT = Path(__file__).resolve().parents[3]  # the clone (src/dlf/zoo/make.py), where train.py and docs/ sit


def run_command(name: str, run_dir: Path, data_dir: str | None = None) -> dict:
    """Run the entry's command into `run_dir` (one CPU thread, as docs/results.md's runs); its wall and CPU seconds."""
    entry = ENTRIES[name]
    args = [*entry.overrides, f"seed={SEED}", "trainer=cpu", f"hydra.run.dir={run_dir}"]
    if data_dir:
        args.append(f"paths.data_dir={data_dir}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    code = subprocess.run([sys.executable, "-m", "dlf.run.cli", *args], env=env).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise DlfError(f"dlf-zoo train {name}: `{entry.command}` failed (exit {code}); its log is in {run_dir}")
    timing = {"wall_s": round(time.time() - t0, 1), "cpu_s": round(after.ru_utime + after.ru_stime
                                                                    - before.ru_utime - before.ru_stime, 1),
              "command": entry.command, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    (run_dir / "zoo_timing.json").write_text(json.dumps(timing, indent=1))
    return timing


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ship_weights(name: str, run_dir: Path) -> Path:
    """The run's best checkpoint, trimmed to what a model needs (state_dict, hyper-parameters, versions), saved with
    torch.save into dlf/zoo/weights/NAME.ckpt."""
    import torch

    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    keep = {k: ckpt[k] for k in ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch", "global_step")
            if k in ckpt}
    keep["state_dict"] = {k: v.contiguous().clone() for k, v in keep["state_dict"].items()}
    path = store.store_dir() / f"{name}.ckpt"
    with atomic_write(path) as f:  # a killed `dlf-zoo train` leaves the shipped file as it was
        torch.save(keep, f)
    return path


def results_row(key: str | None) -> dict | None:
    """docs/results.md's row for `key` (its reproduce-data): the mean ± std over seeds and the published number."""
    import re

    page = ROOT / "docs" / "results.md"
    if key is None or not page.is_file():
        return None
    text = page.read_text()
    data = json.loads(re.search(r"<!-- reproduce-data\n(.*?)-->", text, re.S).group(1))
    row = next((r for r in data if r["key"] == key), None)
    if row is None:
        return None
    cells = next(line.split(" | ") for line in text.splitlines() if line.startswith(f"| {row['name']} |"))
    return {"experiment": row["name"], "mean_std": cells[1], "seeds": row["seeds"], "published": row["published"],
            "command": row["command"]}


def run_config(run_dir: Path):
    """The run's config (its .hydra/config.yaml) with its paths filled in, as dlf.run.checkpoint.load_run reads it."""
    from omegaconf import open_dict

    from dlf.systems.saved import saved_config

    cfg = saved_config(run_dir)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg


def one_example_flops(system, datamodule) -> int:
    """FLOPs of the forward pass on one test example (a GAN: G on one z), by torch's FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if hasattr(system, "generate"):
            system.generate(1, torch.Generator().manual_seed(0))
        else:
            system(datamodule.test[0][:1])
    return int(counter.get_total_flops())


def versions() -> dict:
    import hydra
    import lightning
    import torch

    return {"torch": torch.__version__, "lightning": lightning.__version__, "hydra": hydra.__version__}


def commit() -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (r.stdout.strip() or "unknown") + ("+" if dirty else "")


def write_card(name: str, run_dir: Path, weights: Path) -> dict:
    """NAME.json beside the weights: everything `dlf-zoo show` prints and `dlf-zoo eval` checks."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from dlf.systems.base import System

    entry, cfg = ENTRIES[name], run_config(run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    timing = json.loads((run_dir / "zoo_timing.json").read_text())
    if entry.metric not in result["test"]:
        raise DlfError(f"dlf-zoo train {name}: the run's test metrics {sorted(result['test'])} lack the entry's metric "
                       f"{entry.metric} (dlf/zoo/entries.py)")
    datamodule = instantiate(cfg.data)
    datamodule.prepare()
    system = System.load_from_checkpoint(weights)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    if "data_dir" in data_cfg:
        data_cfg["data_dir"] = None  # where the data lives is the evaluator's (dlf-zoo eval --data-dir)
    card = {"name": name, "task": entry.task, "kind": entry.kind, "data": entry.data, "command": entry.command,
            "seed": SEED, "metric": entry.metric, "test": result["test"], "results_md": results_row(entry.results_row),
            "num_params": sum(p.numel() for p in system.parameters()), "flops_one_example": one_example_flops(system, datamodule),
            "file_size": weights.stat().st_size, "sha256": sha256(weights), "preprocessing": entry.preprocessing,
            "train": {"wall_s": timing["wall_s"], "cpu_s": timing["cpu_s"], "machine": timing["machine"],
                      "threads": 1, "steps": result.get("steps")},
            "commit": commit(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "versions": versions(),
            "licence": {"weights": "MIT (dlf's own licence)", "data": entry.data_licence}, "data_config": data_cfg,
            "shipped": True}
    atomic_write_text(store.store_dir() / f"{name}.json", json.dumps(card, indent=1) + "\n")
    return card


def train(name: str, work_dir: Path, data_dir: str | None = None, reuse: bool = False) -> dict:
    """`dlf-zoo train NAME`: the card's command into <work_dir>/NAME (reuse=True: a finished run of the same command
    already there is shipped as it is), then the weights and the card."""
    run_dir = Path(work_dir).resolve() / name
    done = run_dir / "zoo_timing.json"
    if not (reuse and done.is_file() and json.loads(done.read_text())["command"] == ENTRIES[name].command):
        run_command(name, run_dir, data_dir)
    return write_card(name, run_dir, ship_weights(name, run_dir))


def composed_system(name: str):
    """An entry's system with fresh weights from its command's config (Hydra's compose) and its data's facts: for an
    entry whose weights are not shipped yet (this reads its dataset)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from dlf.run.build import build_system
    from dlf.run.train import CONFIG_DIR

    entry = ENTRIES[name]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*entry.overrides, f"seed={SEED}", "trainer=cpu"])
    facts = instantiate(cfg.data).prepare()
    return build_system(cfg, facts)
