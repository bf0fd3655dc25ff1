"""Every command the docs show runs as written (issue 28): README.md, docs/*.md and examples/*/README.md, code blocks
and inline commands alike (tests/doc_commands.py finds them). Each command here either runs, with nothing changed but
budget arguments appended, or sits in EXEMPT with the reason it cannot run on this machine. A command added to the docs
that is neither fails `test_every_doc_command_is_run_or_exempt`, naming it and its file:line; an exemption that no
longer matches a command fails `test_no_stale_exemption`.

How a command runs:
- `python train.py ...` / `dlf-train ...`: a real process with stdout and stderr to files (not a terminal), the
  progress bar on, logs under its own folder (DLF_ROOT), with TRAIN_BUDGET appended (one epoch of two batches, one
  validation and one test batch; a resume, `ckpt_path=...`, gets two epochs so that it trains on; an Optuna search two
  trials) and the shared data cache (`paths.data_dir`), so MNIST-1D is generated once. `python train.py` runs through
  the tests' fork server (tests/cli_server.py: the same `dlf.run.cli.cli()` after its imports), `dlf-train` as the
  installed console script (its `PYTHONPATH=.` must reach the interpreter).
- `dlf-generate|dlf-sample|dlf-compare`: the console script next to this Python (else `python -c` calling the same
  entry point), this checkout's src/ first on PYTHONPATH.
- `python scripts/...`, `scripts/*.sh`: a subprocess with this Python first on PATH, plus the script's own small-budget
  flags from SCRIPT_BUDGET (appended flags win: argparse keeps the last value).
- Placeholders (`<run>`, `<dir>`, `<time>_<pid>`, `seed=S`, `...` = no further arguments) are filled from runs this
  module made first (`made`, a root with an LSTM text run, a GAN run, an MLP run, an XOR run and an XOR sweep).
- A command the docs show failing on purpose (docs/bad_inputs.md) must fail with the exit status and the one line the
  docs give.

Commands that take minutes even on a budget are marked `slow` (they run in `pytest -m slow`): scripts/reproduce.py
(--quick still trains every family), scripts/run_notebooks.py (all seven notebooks), scripts/bench_all.sh (eight
benchmarks) and docs/results.md's recorded multiruns (3-20 jobs each, half of them through joblib's worker processes).
Every other command, README.md's included, runs in the default suite (~6 minutes on the 2-core machine).
`test_listing` prints the table of what runs and what is exempt (`pytest -s -k listing`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_server import DATA_CACHE, ROOT, cli_env, shared_server
from doc_commands import Command, all_commands

# ---- what cannot run here, and why -------------------------------------------------------------------------------
NO_CUDA = "needs CUDA GPUs; this machine has none (scripts/gpu_check.sh is the GPU path, run where a GPU is)"
MULTI_NODE = "starts processes on several machines (N nodes); one machine here (DDP on CPU: `trainer=ddp_cpu`)"
EXEMPT: dict[str, str] = {  # regex, matched against the whole normalised command -> why it does not run here
    r"python -m venv \.venv": "makes the virtual environment: .ci/run does it from scratch, tests/test_install.py "
                              "makes a fresh venv and installs the wheel into it",
    r"pip install.*": "an install from the package registry (none reachable here): .ci/run installs the extras, "
                      "tests/test_install.py installs the wheel in a fresh venv",
    r"python -m build": "builds the wheel: tests/test_install.py runs `python -m build --wheel` and installs it",
    r"python -m pytest( -m slow)?": "the test suite itself (.ci/run runs it); run from inside it, it would recurse",
    r"jupyter lab .*": "a server that waits for a browser (scripts/run_notebooks.py executes the notebooks)",
    r"tensorboard --logdir .*": "a server that waits for a browser (tests/test_loggers.py reads the event files back)",
    r"python train\.py -m hydra/launcher=slurm .*": "submits to a Slurm cluster: tests/test_slurm.py runs the CPU row "
                                                    "as written on the local cluster (scripts/slurm_local.sh); the "
                                                    "trainer=gpu one needs GPUs",
    r"scripts/(slurm_local|services)\.sh up.*": "starts daemons as root (apt installs them): the slurm_cluster fixture "
                                              "(tests/conftest.py) runs slurm_local.sh status/up/down, .ci/run "
                                              "services.sh up/down; run from here it would stop the tests' cluster",
    r"sbatch scripts/slurm/ddp_cpu\.sbatch .*": "a Slurm job: tests/test_slurm.py submits it to the local cluster "
                                               "(slurm marker; it waits for the job)",
    r"python train\.py -m hparams_search=mlp_xor_optuna hydra\.sweeper\.storage=postgresql://.*": "needs PostgreSQL "
        "(scripts/services.sh up): tests/test_optuna_study.py runs it (slow) with two processes at once",
    r"MLFLOW_TRACKING_URI=http://\S+ python train\.py .*": "needs a running `mlflow server`: "
        "tests/test_loggers_external.py starts one (SQLite backend, 127.0.0.1) and runs this form against it",
    r"torchrun --nnodes=.*": MULTI_NODE,
    r"srun .*": MULTI_NODE + "; needs SLURM",
    r"python train\.py -m hydra/launcher=submitit_slurm .*": MULTI_NODE + "; needs SLURM",
    r"scripts/gpu_check\.sh --download": "downloads wheels from the package registry (none reachable here)",
    r"python scripts/bench\.py WORKLOAD": "prose naming the argument: each workload the docs name runs below",
    r"(PYTHONPATH=src )?python scripts/bench_(cnn|gan|sequence)\.py.*": "a past measurement's command, kept with "
        "its numbers; the row says the script was since replaced by scripts/bench.py, and it no longer exists",
    r"OMP_NUM_THREADS=1 python scripts/health_lecture\.py .*": "five runs that rewrite the docs' figure: "
        "tests/test_health.py::test_lecture_claims runs the same five, asserts what it shows and draws it",
    r"OMP_NUM_THREADS=1 python scripts/bench_health\.py .*": "a benchmark of many minutes: "
        "tests/test_health.py::test_bench_health_runs runs it on one workload for one round",
    r"python scripts/time_to_target\.py.*": "the time-to-target measurement: every headline's old and new recipes, "
        "an hour of CPU on an idle machine: tests/test_time_to_target.py runs it --quick on lstm_mnist1d (old and new "
        "seed 1) into a copy of docs/results.md",
    r".* trainer=gpu( .*)?": NO_CUDA,
    r".* trainer=ddp( .*)?": NO_CUDA + "; without CUDA it fails at start-up (docs/bad_inputs.md, tests/test_ddp.py)",
}
# exempt only where the data is missing: these run where Debian's dataset-fashion-mnist is installed (.ci/run as root)
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
NEEDS_FASHION = r".*experiment=(cnn|dcgan)_fashion.*"

# ---- budgets -----------------------------------------------------------------------------------------------------
TRAIN_BUDGET = ["trainer.max_epochs=1", "trainer.max_steps=-1", "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "++trainer.val_check_interval=1.0",
                "trainer.check_val_every_n_epoch=1", "++trainer.max_time=null", f"paths.data_dir={DATA_CACHE}"]
RESUME_BUDGET = [*TRAIN_BUDGET, "trainer.max_epochs=2"]  # a resume trains one epoch more than the run it continues
OPTUNA_BUDGET = ["hydra.sweeper.n_trials=2"]
SCRIPT_BUDGET = {  # script -> flags appended (argparse: the last value wins) or environment
    "scripts/bench.py": ["--steps", "5", "--repeats", "1"],
    "scripts/xor_course.py": ["--seeds", "2"],
    "scripts/reproduce.py": ["--quick", "--out", "{tmp}/results.md", "--workdir", "{tmp}/work"],
    "scripts/run_notebooks.py": ["--check"],  # execute only: the stored notebooks stay as they are
    "scripts/gan_probe.py": ["--steps", "20", "--every", "10"],
    "scripts/readme_tables.py": ["--check"],  # check only: the README of this checkout is never rewritten by a test
    "scripts/zoo_docs.py": ["--check"],  # check only: docs/zoo.md is never rewritten by a test
    "scripts/startup.py": ["--runs", "1"],  # one round: the floor and one debug=fast run
    "scripts/train_feature_nets.py": ["--out", "{tmp}/nets"],  # never over the shipped nets (test_frechet checks them)
}
SCRIPT_ENV = {"scripts/bench_all.sh": {"REPEATS": "1", "EXTRA": "--steps 3"}}
NO_BUDGET_FLAGS = {"--help", "--cfg", "--info", "--hydra-help", "-h"}

# ---- long even on a budget: `pytest -m slow` ------------------------------------------------------------------------
SLOW = [r"python scripts/reproduce\.py.*", r"python scripts/run_notebooks\.py.*", r".*scripts/bench_all\.sh",
        r"OMP_NUM_THREADS=1 python train\.py -m .*"]  # docs/results.md's recorded multiruns (3-20 jobs each)


def _exemption(cmd: Command) -> str | None:
    for pattern, why in EXEMPT.items():
        if re.fullmatch(pattern, cmd.text):
            return why
    return None


def _kind(cmd: Command) -> str:
    words = _strip_env(shlex.split(re.sub(r"<[^>]*>", "X", cmd.text)))[1]
    if words[:2] == ["python", "train.py"]:
        return "train"
    if words[0] == "dlf-train":
        return "dlf-train"
    if words[0] in ("dlf-generate", "dlf-sample", "dlf-compare") or words[:3] == ["python", "-m", "dlf.compare"]:
        return "tool"
    if words[0] == "python" and words[1].startswith("scripts/") or words[0].startswith(("scripts/", "./scripts/")):
        return "script"
    return "other"


def _strip_env(words: list[str]) -> tuple[dict, list[str]]:
    env = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        k, v = words[0].split("=", 1)
        env[k] = v
        words = words[1:]
    return env, words


# ---- the commands --------------------------------------------------------------------------------------------------
COMMANDS = all_commands()
RUN = [c for c in COMMANDS if _exemption(c) is None]


def _id(c: Command) -> str:
    return (c.cwd + ": " if c.cwd else "") + c.text


def _params():
    out = []
    for c in RUN:
        marks = [pytest.mark.slow] if any(re.fullmatch(p, c.text) for p in SLOW) else []
        out.append(pytest.param(c, id=_id(c)[:150], marks=marks))
    return out


# ---- runs the placeholders point at ------------------------------------------------------------------------------
class Made:
    """A DLF_ROOT with the runs the docs' placeholders name, all made with TRAIN_BUDGET."""

    def __init__(self, root: Path):
        self.root = root
        self.sweep_overrides = ["optimizer=sgd,momentum,adam", "seed=1,2,3"]  # the README's resumed sweep
        for args in (["experiment=lstm_text"], ["model=gan"], ["model=mlp", "trainer.max_epochs=150"], [],
                     ["-m", *self.sweep_overrides]):
            r = shared_server().run([*args, *TRAIN_BUDGET], cwd=root, timeout=600)
            assert r.returncode == 0, (args, r.stderr[-3000:])
        self.lstm_text = self._one("lstm_text", "runs")
        self.gan = self._one("gan", "runs")
        self.mlp = self._one("mlp", "runs")
        self.sweep = self._one("mlp_xor", "multiruns")

    def _one(self, task: str, kind: str) -> str:
        (d,) = [p for p in (self.root / "logs" / task / kind).iterdir() if p.is_dir()]
        return d.relative_to(self.root).as_posix()

    def fill(self, text: str) -> str:
        """The command with its placeholders filled (as a user would type the paths: relative to the root)."""
        subs = [
            (r"logs/lstm_text/runs/<run>", self.lstm_text), (r"logs/gan/runs/<run>", self.gan),
            (r"logs/mlp/runs/<run>", self.mlp), (r"dlf-sample <run>", f"dlf-sample {self.lstm_text}"),
            (r"logs/mlp_xor/multiruns/<time>_<pid>", self.sweep), (r"<the sweep's dir>", self.sweep),
            (r"<same overrides>", " ".join(self.sweep_overrides)), (r"<dir>", self.sweep),
        ]
        for old, new in subs:
            text = text.replace(old, new)
        return text


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Made:
    return Made(tmp_path_factory.mktemp("made"))


def _fill_generic(text: str) -> str:
    text = re.sub(r"(?<=\s)seed=S(?=\s|$)", "seed=1", text)  # `seed=S`: any seed
    text = re.sub(r"\s\.\.\.(?=\s|$)", "", text)  # `python train.py ...`: the command with no further arguments
    text = text.replace("/path/to/other/checkout", str(ROOT))  # "another dlf": this one
    return text


def _needs_made(text: str) -> bool:
    return "<" in text or "ckpt_path=" in text or re.search(r"(^|\s)logs/", text) is not None


# ---- the commands the docs show failing on purpose (docs/bad_inputs.md): exit status and the documented line ---------
BAD_INPUTS = ROOT / "docs" / "bad_inputs.md"


def _documented_error(cmd: Command) -> str | None:
    """The `error:` line docs/bad_inputs.md gives for this command (the last cell of its table row), else None."""
    if not any(w.startswith("docs/bad_inputs.md:") for w in cmd.where):
        return None
    lines = BAD_INPUTS.read_text().splitlines()
    for w in cmd.where:
        if not w.startswith("docs/bad_inputs.md:"):
            continue
        row = lines[int(w.split(":")[1]) - 1]
        if row.startswith("| `") and row.count("|") >= 4:
            head, _, last = row.rstrip(" |").rpartition(" | ")
            if f"`{cmd.text}" in head:  # the command's own column, not a command quoted inside the message
                return last
    return None


def _setup_bad_input(text: str, cwd: Path, made: Made) -> tuple[str, dict, list]:
    """Make what a failing command of docs/bad_inputs.md needs; return (command, env, held resources)."""
    from omegaconf import OmegaConf

    held, env = [], {}
    if text.startswith(("dlf-generate <run>", "dlf-sample <run>")):  # a run dir whose config names shutil.rmtree
        src = made.gan if text.startswith("dlf-generate") else made.lstm_text
        run = cwd / "run"
        shutil.copytree(made.root / src, run)
        cfg_file = run / ".hydra" / "config.yaml"
        cfg = OmegaConf.load(cfg_file)
        cfg.model.net._target_ = "shutil.rmtree"
        OmegaConf.save(cfg, cfg_file)
        text = text.replace("<run>", "run")
    elif text == "dlf-generate loose.ckpt":
        shutil.copy(made.root / made.gan / "checkpoints" / "last.ckpt", cwd / "loose.ckpt")
    elif text == "dlf-generate empty":
        (cwd / "empty").mkdir()
    elif "<busy port>" in text:
        s = socket.socket()
        s.bind(("", 0))
        s.listen()
        held.append(s)
        text = text.replace("<busy port>", str(s.getsockname()[1]))
    return text, env, held


# ---- running one command -------------------------------------------------------------------------------------------
TOOL_ENTRY = {"dlf-generate": "dlf.tools.generate:main", "dlf-sample": "dlf.tools.sample:cli",
              "dlf-compare": "dlf.tools.compare:main",
              "dlf-train": "dlf.run.cli:cli"}


def _tool_argv(name: str) -> list[str]:
    """The console script as installed next to this Python, else the same entry point through `python -c`."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [sys.executable, str(script)]
    mod, fn = TOOL_ENTRY[name].split(":")
    return [sys.executable, "-c", f"import sys; from {mod} import {fn}; sys.argv[0] = {name!r}; sys.exit({fn}())"]


def _env(cwd: Path, extra: dict) -> dict:
    env = cli_env(cwd)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # `python`: this one
    env["DLF_DATA"] = str(DATA_CACHE)  # scripts/bench.py's data
    for k, v in extra.items():
        if k == "PYTHONPATH":  # the command's entries (relative ones from the root of the clone), then this src/
            parts = [p if os.path.isabs(p) or p == "." else str(ROOT / p) for p in v.split(os.pathsep)]
            v = os.pathsep.join([*parts, env["PYTHONPATH"]])
        env[k] = v
    return env


def _train_budget(args: list[str]) -> list[str]:
    if NO_BUDGET_FLAGS & set(args):
        return []
    budget = RESUME_BUDGET if any(a.startswith("ckpt_path=") for a in args) else TRAIN_BUDGET
    if any(a.startswith("hparams_search=") or a == "hydra/sweeper=optuna" for a in args):
        budget = [*budget, *OPTUNA_BUDGET]
    return budget


def run_command(text: str, cwd: Path, extra_env: dict | None = None, timeout: int = 600):
    """Run one (filled) doc command in cwd; returns (returncode, stdout, stderr, the argv run)."""
    env_cmd, words = _strip_env(shlex.split(text))
    env_cmd.update(extra_env or {})
    if words[:2] == ["python", "train.py"]:
        args = [*words[2:], *_train_budget(words[2:])]
        if env_cmd.keys() - {"OMP_NUM_THREADS"} or "trainer=ddp_cpu" in args:  # an environment, or DDP's processes
            argv = [sys.executable, str(ROOT / "train.py"), *args]
        else:
            r = shared_server().run(args, cwd=cwd, env=env_cmd, timeout=timeout)
            return r.returncode, r.stdout, r.stderr, ["python", "train.py", *args]
    elif words[0] in TOOL_ENTRY:
        budget = _train_budget(words[1:]) if words[0] == "dlf-train" else []
        argv = [*_tool_argv(words[0]), *words[1:], *budget]
    elif words[:3] == ["python", "-m", "dlf.compare"]:
        argv = [sys.executable, *words[1:]]
    elif words[0] == "python" and words[1].startswith("scripts/"):
        budget = [a.format(tmp=cwd) for a in SCRIPT_BUDGET.get(words[1], [])]
        argv = [sys.executable, str(ROOT / words[1]), *words[2:], *budget]
    elif words[0].startswith("scripts/") and words[0].endswith(".sh"):
        env_cmd = {**SCRIPT_ENV.get(words[0], {}), **env_cmd}
        argv = ["bash", str(ROOT / words[0]), *words[1:]]
    else:
        raise AssertionError(f"no way to run {text!r}")
    r = subprocess.run(argv, cwd=cwd, env=_env(cwd, env_cmd), capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr, argv


RESULTS: list[tuple[str, str, float, str]] = []  # (command, outcome, seconds, where)


@pytest.mark.parametrize("cmd", _params())
def test_doc_command_runs(cmd: Command, request, tmp_path):
    if re.fullmatch(NEEDS_FASHION, cmd.text) and not FASHION.is_file():
        RESULTS.append((cmd.text, "skipped: no Fashion-MNIST", 0.0, " ".join(cmd.where)))
        pytest.skip(f"needs Debian's dataset-fashion-mnist ({FASHION.parent}); runs where it is installed")
    text = _fill_generic(cmd.text)
    cwd = tmp_path
    if cmd.cwd:  # `cd examples/user_model` in its code block: a copy of that folder
        cwd = tmp_path / cmd.cwd
        shutil.copytree(ROOT / cmd.cwd, cwd, ignore=shutil.ignore_patterns("__pycache__"))
    expected = _documented_error(cmd)
    held, extra = [], {}
    if expected is not None or _needs_made(text):
        made = request.getfixturevalue("made")
        if expected is not None:
            text, extra, held = _setup_bad_input(text, cwd, made)
        else:
            text, cwd = made.fill(text), made.root
    assert "<" not in text, f"a placeholder this test cannot fill: {text!r} ({', '.join(cmd.where)})"
    t0 = time.monotonic()
    try:
        rc, out, err, argv = run_command(text, cwd, extra,  # every row of reproduce.py, quick: minutes each
                                         timeout=2400 if "scripts/reproduce.py" in text else 600)
    finally:
        for h in held:
            h.close()
    dt = time.monotonic() - t0
    where = " ".join(cmd.where)
    tail = "\n".join(err.strip().splitlines()[-25:])
    if expected is not None:
        tool = text.split()[0] if text.startswith("dlf-") else "dlf"
        line = err.strip().splitlines()[-1] if err.strip() else ""
        port = re.search(r"MASTER_PORT=(\d+)", text)
        prefix = expected.split(" (")[0].replace("<run>", "run").replace("<port>", port.group(1) if port else "")
        prefix = re.split(r"<[^>]+>", prefix)[0]
        RESULTS.append((cmd.text, f"fails on purpose: exit {rc}", dt, where))
        assert rc == 2 if tool != "dlf" else rc != 0, f"{text!r} ({where}): exit {rc}, documented 2\n{tail}"
        assert line.startswith(f"{tool}: error: {prefix}"), f"{text!r} ({where}): last line {line!r}, documented " \
                                                            f"{tool}: error: {expected!r}"
        return
    RESULTS.append((cmd.text, "ok" if rc == 0 else f"FAILED (exit {rc})", dt, where))
    assert rc == 0, f"{' '.join(map(str, argv))}\n  in {cwd} ({where}) exited {rc}:\n{tail}\n--- stdout:\n{out[-1500:]}"
    assert "Traceback" not in err, f"{text!r} ({where}) printed a traceback:\n{tail}"


# ---- every command is run or exempt; every exemption is used -------------------------------------------------------
def test_every_doc_command_is_run_or_exempt():
    """Nothing falls through: every command found is exempt or has a way to run (and only known placeholders)."""
    problems = []
    known = re.compile(r"<(run|dir|time>_<pid|the sweep's dir|same overrides|busy port)>")
    for c in COMMANDS:
        if _exemption(c) is not None:
            continue
        if _kind(c) == "other":
            problems.append(f"{c.text!r} ({', '.join(c.where)}): neither run by this test nor in its EXEMPT table")
        rest = known.sub("", _fill_generic(c.text))
        if "<" in rest or re.search(r"(^|\s)(N|G|i)(\s|$)|=N\b|=G\b", rest):
            problems.append(f"{c.text!r} ({', '.join(c.where)}): a placeholder this test cannot fill; fill it in "
                            "Made.fill or exempt the command")
    assert not problems, "\n".join(problems)


def test_no_stale_exemption():
    stale = [p for p in EXEMPT if not any(re.fullmatch(p, c.text) for c in COMMANDS)]
    assert not stale, f"exemptions that match no command of the docs any more: {stale}"


def test_extraction_finds_the_readme_commands():
    """The extractor's rules on known lines: comments, chains, asides, .venv/bin, cd, `...`."""
    texts = {c.text: c for c in COMMANDS}
    cwd = {(c.text, c.cwd) for c in COMMANDS}
    assert "python train.py model=mlp_xor optimizer=momentum" in texts  # comment stripped
    assert {"python -m venv .venv", "pip install -e .", "python train.py"} <= texts.keys()  # a && b && c
    assert "python train.py experiment=gan_grid seed=2" in texts  # `seed=1 (and seed=2)`
    assert "dlf-train model=lstm optimizer=rmsprop" in texts  # `(or dlf-train ...)`
    assert 'dlf-sample logs/lstm_text/runs/<run> --prompt "The sun rises in the" --temperature 0.8 --top-k 5' in texts
    assert ("PYTHONPATH=. dlf-train --config-dir configs model=my_gru", "examples/user_model") in cwd  # cd / its folder
    assert ("PYTHONPATH=. dlf-train --config-dir configs model=my_gru", "") not in cwd
    assert "python train.py -m model=rnn hydra/sweeper=optuna 'optimizer.lr=tag(log, interval(0.0001, 0.1))' " \
           "hydra.sweeper.n_trials=10" in texts  # quoted parentheses and commas kept
    assert not any(t.startswith("dlf-generate:") for t in texts)  # an error message, not a command


def test_listing(capsys):
    """The table of every command run (with its budget) and every exemption with its reason."""
    rows = ["| command | where | what this test does |", "|---|---|---|"]
    for c in COMMANDS:
        why = _exemption(c)
        slow = any(re.fullmatch(p, c.text) for p in SLOW)
        what = f"exempt: {why}" if why else ("runs (slow)" if slow else "runs")
        if not why and _documented_error(c) is not None:
            what += ", fails on purpose as documented"
        rows.append(f"| `{_id(c)}` | {', '.join(c.where)} | {what} |")
    with capsys.disabled():
        print("\n" + "\n".join(rows))
    assert len(rows) == len(COMMANDS) + 2


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    if not RESULTS:
        return
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is None or capman is None:
        return
    with capman.global_and_fixture_disabled():
        _write_summary(tr)


def _write_summary(tr) -> None:
    tr.write_line("")
    tr.write_line(f"doc commands run: {len(RESULTS)}; exempt: {len(COMMANDS) - len(RUN)}")
    for text, outcome, dt, where in RESULTS:
        tr.write_line(f"  {outcome:<28} {dt:6.1f} s  {text}   [{where}]")
    for c in COMMANDS:
        if _exemption(c):
            tr.write_line(f"  {'exempt':<28}           {c.text}   [{' '.join(c.where)}]: {_exemption(c)}")
