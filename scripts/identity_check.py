"""Show that a change altered no behaviour: the same ten configurations, trained before and after, give byte-identical
`metrics.csv` files and checkpoints with identical tensors.

    python scripts/identity_check.py train OUT_DIR                 # train the ten configurations, write OUT_DIR/manifest.json
    python scripts/identity_check.py compare BEFORE_DIR AFTER_DIR  # one line per configuration; exit 1 on any difference
    python scripts/identity_check.py manifest OUT_DIR [--was DIR]  # (re)write OUT_DIR/manifest.json from its runs

Typical use around a refactor:

    git checkout <old commit>  && python scripts/identity_check.py train /tmp/identity/before
    git checkout <new commit>  && python scripts/identity_check.py train /tmp/identity/after
    python scripts/identity_check.py compare /tmp/identity/before /tmp/identity/after

`train` runs each configuration as a real `python train.py ...` subprocess of the repository this script lives in
(PYTHONPATH=<repo>/src, OMP_NUM_THREADS=MKL_NUM_THREADS=1, so the thread count cannot change a sum's order), with
`logger=csv trainer=cpu trainer.deterministic=true`, small budgets, DLF_ROOT=OUT_DIR/<name> and the run dir
OUT_DIR/<name>/run (the resume configuration: OUT_DIR/<name>/logs/<task>/runs/run, where `ckpt_path=last` looks).
Generated datasets are cached in OUT_DIR/data, shared by the configurations of one OUT_DIR and made afresh for each
OUT_DIR, so "before" and "after" both generate them in the same order. The whole `train` takes 1.5-2.5 minutes on the
2-core machine (7-20 s a configuration). A run's console output is kept in OUT_DIR/<name>/console.txt. `train` checks
that every run trained, validated, tested and wrote checkpoints/last.ckpt and best.ckpt, and exits 1 if one did not.
The resume configuration's first call's files (its metrics.csv, which Lightning's CSVLogger starts afresh on resume,
result.json and checkpoints) are copied to OUT_DIR/cnn_resume/stage1/ and compared too; `train` also prints whether
its final weights equal cnn_digits' (2 epochs straight; information, not part of the comparison).

The manifest holds, per configuration:
- `metrics.csv`: the sha256 of <run dir>/csv/metrics.csv (byte-identical required);
- `result.json`: its content, without `wall_s` (a wall time);
- each checkpoint (`checkpoints/*.ckpt`): the whole dict, loaded with torch.load(weights_only=True) and walked
  recursively; a tensor becomes "tensor <dtype> <shape> <sha256 of its bytes>", any other leaf "<type> <JSON value>".
Normalised, because they are where a run was, not what it computed: the absolute OUT_DIR in any string (a dict key
included: ModelCheckpoint's best_k_models is keyed by path) becomes "<OUT>", the repository root "<REPO>" (so the
checkpoints' dirpath, best_model_path, kth_best_model_path, last_model_path and dlf's run_dir are compared relative to
OUT_DIR, not dropped). Nothing else is dropped: no tensor, metric, RNG state or step count. Whole-file sha256s of the
checkpoints are kept in the manifest for information only (they embed the absolute paths). A moved or copied OUT_DIR
still names its old place inside: `manifest OUT_DIR --was OLD_DIR` normalises that too.

`compare` prints, per configuration, `identical` or the number of differences and the first one (file and key path);
`--all` prints every difference. `--ignore REGEX` (repeatable) skips keys whose path matches: for a change that
deliberately renames something recorded in a checkpoint (e.g. a config `_target_`); say so when you use it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dlf.faults import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
COMMON = ["logger=csv", "trainer=cpu", "trainer.deterministic=true"]
MANIFEST = "manifest.json"
STAGE1 = "stage1"  # the resume configuration's files after its first call (the second overwrites them in the run dir)


@dataclass
class Config:
    name: str
    why: str
    overrides: list[str]
    resume_overrides: list[str] | None = None  # a second `train.py` call: the same run continued with ckpt_path=last
    task: str | None = None  # task_name, for the resume configuration's run dir (logs/<task>/runs/run)

    def run_dir(self, out: Path) -> Path:
        if self.resume_overrides is not None:
            return out / self.name / "logs" / str(self.task) / "runs" / "run"
        return out / self.name / "run"


# Ten fixed configurations: every family, both kinds of optimization (automatic; the GAN's manual one with two
# optimizers and two schedulers), every default dataset generator the families use, an experiment config, and a resume.
# Do not change them between a "before" and an "after": the manifests would not be comparable.
CONFIGS = [
    Config("mlp_xor", "the MLP on XOR (default model, full-batch, mse, normal init, decision-boundary figure)",
           ["model=mlp_xor", "trainer.max_epochs=3"]),
    Config("mlp_mnist1d", "the MLP classifier on MNIST-1D (generates the shared dataset; cross-entropy, softmax)",
           ["model=mlp", "trainer.max_epochs=2"]),
    Config("rnn_mnist1d", "the tanh RNN (BPTT, gradient clipping, gradient-through-time callback)",
           ["model=rnn", "trainer.max_epochs=2", "trainer.limit_train_batches=10"]),
    Config("lstm_mnist1d", "the LSTM (gates, forget bias, gate-activity callback)",
           ["model=lstm", "trainer.max_epochs=2", "trainer.limit_train_batches=10"]),
    Config("cnn_digits", "the 2-D CNN on 8x8 digits (shift augmentation and dropout draw random numbers; CNN figures)",
           ["model=cnn", "trainer.max_epochs=2"]),
    Config("cnn1d_mnist1d", "the 1-D CNN on MNIST-1D (val/acc monitored, max mode)",
           ["model=cnn1d", "trainer.max_epochs=3"]),
    Config("gan_ring", "the MLP GAN on the ring (manual optimization, two optimizers, linear schedulers, mode scores)",
           ["model=gan", "trainer.max_epochs=2", "trainer.limit_train_batches=50"]),
    Config("dcgan_digits", "the DCGAN on digits (conv pair; trains and caches the digits scoring classifier)",
           ["model=dcgan", "trainer.max_epochs=2", "trainer.limit_train_batches=15"]),
    Config("lstm_text", "experiment=lstm_text: an experiment config, the generated text corpus, a per-step LM cost",
           ["experiment=lstm_text", "trainer.max_epochs=1", "trainer.limit_train_batches=10",
            "trainer.limit_val_batches=2", "trainer.limit_test_batches=2"]),
    Config("cnn_resume", "resume: 1 epoch, then ckpt_path=last to 2 epochs in the same run dir (checkpoint lookup, "
           "compatibility check, weights, optimizer, RNG and data-order state restored)",
           ["model=cnn", "trainer.max_epochs=1"],
           resume_overrides=["model=cnn", "trainer.max_epochs=2", "ckpt_path=last"], task="cnn"),
]


# ---------------------------------------------------------------------------------------------------------- train
def _env(out: Path, cfg: Config) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO / "src"), DLF_ROOT=str(out / cfg.name), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONHASHSEED="0")
    return env


def _call(args: list[str], env: dict, log: Path) -> int:
    with open(log, "a") as f:
        f.write("$ " + " ".join(args) + "\n")
        f.flush()
        return subprocess.run(args, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT).returncode


def check_run(run: Path) -> list[str]:
    """What a run failed to do: validate, test, write last.ckpt and best.ckpt, end with status ok."""
    problems = []
    for f in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "csv/metrics.csv", "result.json"):
        if not (run / f).is_file():
            problems.append(f"no {f}")
    if (run / "result.json").is_file():
        res = json.loads((run / "result.json").read_text())
        if res.get("status") != "ok":
            problems.append(f"status {res.get('status')}: {res.get('error')}")
        if not res.get("test"):
            problems.append("no test metrics in result.json")
    if (run / "csv/metrics.csv").is_file():
        with open(run / "csv/metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for prefix in ("train/", "val/", "test/"):
            if not any(v not in (None, "") for r in rows for k, v in r.items() if k.startswith(prefix)):
                problems.append(f"no {prefix}* value in metrics.csv")
    return problems


def snapshot_stage1(run: Path, dest: Path) -> None:
    """Copy what the first call of a resumed configuration wrote and the second replaces: metrics.csv (Lightning's
    CSVLogger starts it afresh on resume), result.json and the checkpoints."""
    (dest / "checkpoints").mkdir(parents=True)
    for rel in ("csv/metrics.csv", "result.json", *(f"checkpoints/{c.name}" for c in (run / "checkpoints").glob("*.ckpt"))):
        if (run / rel).is_file():
            shutil.copy2(run / rel, dest / Path(rel).name if rel.startswith("csv/") else dest / rel)


def resume_note(out: Path) -> None:
    """Informational: cnn_resume (1 + 1 epochs) should end with cnn_digits' (2 epochs) weights: resume is exact."""
    import torch

    try:
        a = torch.load(out / "cnn_digits/run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        b = torch.load(CONFIGS[-1].run_dir(out) / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    except (OSError, KeyError, RuntimeError):
        return
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    print(f"note: cnn_resume's final weights {'equal' if same else 'DIFFER from'} cnn_digits' (resumed vs uninterrupted)")


def train(out: Path) -> int:
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        sys.exit(f"identity_check: {out} is not empty: pass a new dir (runs there would mix with old ones)")
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    failed = []
    start = time.time()
    for cfg in CONFIGS:
        t0 = time.time()
        (out / cfg.name).mkdir()
        log = out / cfg.name / "console.txt"
        run = cfg.run_dir(out)
        base = [sys.executable, "train.py", *cfg.overrides, *COMMON, f"paths.data_dir={data}"]
        rc = _call([*base, f"hydra.run.dir={run}"], _env(out, cfg), log)
        if rc == 0 and cfg.resume_overrides is not None:
            snapshot_stage1(run, out / cfg.name / STAGE1)
            # no hydra.run.dir: dlf's own lookup (`last`: logs/<task>/runs/*/checkpoints/last.ckpt) puts it in that run dir
            rc = _call([sys.executable, "train.py", *cfg.resume_overrides, *COMMON, f"paths.data_dir={data}"],
                       _env(out, cfg), log)
        problems = ([f"exit {rc} (see {log})"] if rc else []) + check_run(run)
        print(f"{cfg.name:<14} {time.time() - t0:6.1f} s  {'ok' if not problems else 'FAILED: ' + '; '.join(problems)}",
              flush=True)
        if problems:
            failed.append(cfg.name)
    wall = time.time() - start
    resume_note(out)
    write_manifest(out, wall)
    print(f"identity_check: {len(CONFIGS)} configurations in {wall:.0f} s; manifest: {out / MANIFEST}", flush=True)
    if failed:
        print(f"identity_check: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------------------------- manifest
def normalise_str(s: str, out: str) -> str:
    """A string without the places a run happened to be: OUT_DIR -> <OUT>, the repository -> <REPO>. `out` may hold
    several dirs separated by os.pathsep (OUT_DIR and where its runs were made, if it was moved since)."""
    for o in sorted(str(out).split(os.pathsep), key=len, reverse=True):
        o = o.rstrip("/")
        if o and o in s:
            s = s.replace(o, "<OUT>")
    return s.replace(str(REPO), "<REPO>")


def describe_tensor(t) -> str:
    import torch

    t = t.detach().cpu()
    if t.layout != torch.strided:
        t = t.to_dense()
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return f"tensor {str(t.dtype).removeprefix('torch.')} {list(t.shape)} {hashlib.sha256(raw).hexdigest()}"


def flatten(obj, out: str, prefix: str = "", into: dict | None = None) -> dict:
    """{key path: description} for every leaf of a (checkpoint) dict, walked through dicts, lists and tuples."""
    import torch

    into = {} if into is None else into
    if isinstance(obj, dict) and obj:
        items = [(normalise_str(str(k), out), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)) and obj:
        items = [(str(i), v) for i, v in enumerate(obj)]
    else:
        items = None
    if items is not None:
        for k, v in items:
            flatten(v, out, f"{prefix}/{k}" if prefix else k, into)
        return into
    if isinstance(obj, torch.Tensor):
        desc = describe_tensor(obj)
    elif isinstance(obj, str):
        desc = "str " + json.dumps(normalise_str(obj, out))
    elif obj is None or isinstance(obj, (bool, int, float, dict, list, tuple)):
        desc = f"{type(obj).__name__} {json.dumps(obj)}"  # floats: repr, exact; NaN as NaN
    else:
        desc = f"{type(obj).__name__} {normalise_str(repr(obj), out)}"
    if prefix in into:
        raise ValueError(f"two leaves share the key path {prefix!r}")
    into[prefix] = desc
    return into


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_result(res: dict, out: str) -> dict:
    """result.json without its wall time, strings normalised; flattened like a checkpoint."""
    res = {k: v for k, v in res.items() if k != "wall_s"}
    return flatten(res, out)


def describe_files(run: Path, out: str, entry: dict, prefix: str = "", metrics: str = "csv/metrics.csv") -> None:
    """Add a run's metrics.csv, result.json and checkpoints to a manifest entry (file names prefixed by `prefix`)."""
    import torch

    files, info = entry["files"], entry["info"]
    files[prefix + "metrics.csv"] = {"sha256": sha256(run / metrics)} if (run / metrics).is_file() else None
    result = run / "result.json"
    files[prefix + "result.json"] = describe_result(json.loads(result.read_text()), out) if result.is_file() else None
    for ckpt in sorted((run / "checkpoints").glob("*.ckpt")):
        rel = f"{prefix}checkpoints/{ckpt.name}"
        files[rel] = flatten(torch.load(ckpt, map_location="cpu", weights_only=True), out)
        info[rel + " sha256 (paths inside; not compared)"] = sha256(ckpt)


def describe_run(run: Path, out: str, stage1: Path | None = None) -> dict:
    entry: dict = {"run_dir": normalise_str(str(run), out), "files": {}, "info": {}}
    if stage1 is not None:
        describe_files(stage1, out, entry, prefix=f"{STAGE1}/", metrics="metrics.csv")
    describe_files(run, out, entry)
    return entry


def environment() -> dict:
    import lightning
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "src", "train.py"], cwd=REPO,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "", False
    return {"repo": str(REPO), "commit": commit, "src_dirty": dirty, "python": platform.python_version(),
            "torch": torch.__version__, "lightning": lightning.__version__, "machine": platform.machine(),
            "threads": 1}


def write_manifest(out: Path, wall_s: float | None = None, was: list[str] = ()) -> Path:
    """OUT_DIR/manifest.json for the runs in OUT_DIR; `was`: the dirs OUT_DIR was at when its runs were made, if it
    was moved or copied since (the paths inside its checkpoints and result.json still name them)."""
    out = out.resolve()
    norm = os.pathsep.join([str(out), *(str(Path(w).resolve()) for w in was)])
    path = out / MANIFEST
    if wall_s is None and path.is_file():  # `manifest` again: keep the time `train` measured
        wall_s = json.loads(path.read_text()).get("train_wall_s")
    manifest = {"environment": environment(), "train_wall_s": None if wall_s is None else round(wall_s, 1),
                "configs": {}}
    for cfg in CONFIGS:
        run = cfg.run_dir(out)
        manifest["configs"][cfg.name] = {"overrides": cfg.overrides, "resume_overrides": cfg.resume_overrides,
                                         **describe_run(run, norm, out / cfg.name / STAGE1 if cfg.resume_overrides
                                                        else None)}
    atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return path


# -------------------------------------------------------------------------------------------------------- compare
def diff_entries(a: dict | None, b: dict | None, ignore: list[str] = ()) -> list[str]:
    """Every difference between two configurations' manifest entries, as 'file: key path: A -> B' lines."""
    if a is None or b is None:
        return [f"configuration {'missing in A' if a is None else 'missing in B'}"]
    diffs = []
    if a.get("run_dir") != b.get("run_dir"):
        diffs.append(f"run dir: {a.get('run_dir')} -> {b.get('run_dir')}")
    fa, fb = a.get("files", {}), b.get("files", {})
    for name in sorted(set(fa) | set(fb), key=lambda n: (n != "metrics.csv", n != "result.json", n)):
        x, y = fa.get(name), fb.get(name)
        if x is None or y is None:
            if x != y:
                diffs.append(f"{name}: {'missing in A' if x is None else 'missing in B'}")
            continue
        for key in list(x) + [k for k in y if k not in x]:
            if any(re.search(p, key) for p in ignore):
                continue
            if key not in x or key not in y:
                diffs.append(f"{name}: {key}: {'only in B' if key not in x else 'only in A'}")
            elif x[key] != y[key]:
                diffs.append(f"{name}: {key}: {_short(x[key])} -> {_short(y[key])}")
    return diffs


def _short(s, n: int = 90) -> str:
    s = str(s)
    return s if len(s) <= n else s[: n - 3] + "..."


def compare(a_dir: Path, b_dir: Path, show_all: bool = False, ignore: list[str] = ()) -> int:
    ma = json.loads((a_dir / MANIFEST).read_text())
    mb = json.loads((b_dir / MANIFEST).read_text())
    ea, eb = ma.get("environment", {}), mb.get("environment", {})
    for k in ("python", "torch", "lightning", "machine"):
        if ea.get(k) != eb.get(k):
            print(f"note: {k} differs ({ea.get(k)} vs {eb.get(k)}): differences may come from it, not from the code")
    print(f"A: {a_dir} (commit {str(ea.get('commit'))[:9]}{' + changes' if ea.get('src_dirty') else ''})")
    print(f"B: {b_dir} (commit {str(eb.get('commit'))[:9]}{' + changes' if eb.get('src_dirty') else ''})")
    ca, cb = ma["configs"], mb["configs"]
    different = 0
    for name in list(ca) + [n for n in cb if n not in ca]:
        diffs = diff_entries(ca.get(name), cb.get(name), ignore)
        if not diffs:
            files = ca[name]["files"]
            n_csv = sum(1 for f in files if f.endswith("metrics.csv"))
            n_ckpt = sum(1 for f in files if f.endswith(".ckpt"))
            n_tensors = sum(1 for f in files if f.endswith(".ckpt") for v in files[f].values() if v.startswith("tensor "))
            print(f"{name:<14} identical  ({n_csv} metrics.csv, {n_csv} result.json, {n_ckpt} checkpoints, "
                  f"{n_tensors} tensors)")
            continue
        different += 1
        print(f"{name:<14} DIFFERENT  {len(diffs)} difference(s); first: {diffs[0]}")
        if show_all:
            for d in diffs[1:]:
                print(f"{'':<14}            {d}")
    print(f"identity_check: {len(set(ca) | set(cb)) - different} identical, {different} different")
    return 1 if different else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the ten configurations into OUT_DIR and write OUT_DIR/manifest.json")
    t.add_argument("out", type=Path)
    m = sub.add_parser("manifest", help="(re)write OUT_DIR/manifest.json from the runs already in OUT_DIR")
    m.add_argument("out", type=Path)
    m.add_argument("--was", action="append", default=[], metavar="DIR",
                   help="where OUT_DIR's runs were made, if it was moved or copied since (normalised like OUT_DIR)")
    c = sub.add_parser("compare", help="compare two OUT_DIRs' manifests; exit 1 on any difference")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--all", action="store_true", help="print every difference, not only the first")
    c.add_argument("--ignore", action="append", default=[], metavar="REGEX", help="skip key paths matching REGEX")
    args = p.parse_args(argv)
    if args.cmd == "train":
        return train(args.out)
    if args.cmd == "manifest":
        print(write_manifest(args.out, was=args.was))
        return 0
    return compare(args.a, args.b, args.all, args.ignore)


if __name__ == "__main__":
    sys.exit(main())
