"""Run many `python train.py ...` commands cheaply: a server process imports torch, Lightning and dlf once, then forks
one child per command. Each child is a real, separate process that runs `dlf.run.cli.cli()` with its own argv, cwd,
environment, stdout/stderr files and exit status (signals included), exactly as `python train.py` would after its
imports. That saves the ~5-10 s of imports per command that 25+ bad-input cases and the kill/resume cases would cost.

    with CLIServer() as srv:
        r = srv.run(["model=mlp_xor", "optimizer.lr=-1"], cwd=tmp_path)   # r.returncode, r.stdout, r.stderr

`returncode` is negative (-signal) when the child died of a signal, as with subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# Generated datasets (MNIST-1D) for CLI tests: deterministic and written atomically, so sessions can share them.
DATA_CACHE = Path(os.environ.get("DLF_TEST_DATA", Path(tempfile.gettempdir()) / "dlf-test-data"))


def cli_env(cwd: Path, env: dict | None = None) -> dict:
    """The environment of a CLI run: this checkout's src/ first (absolute), logs and data under cwd (DLF_ROOT)."""
    e = dict(os.environ)
    e.pop("HYDRA_FULL_ERROR", None)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(TESTS)])
    e["DLF_ROOT"] = str(cwd)
    e["OMP_NUM_THREADS"] = "1"
    if env:
        e.update(env)
    return e


def run_train(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python train.py <args>` as a plain subprocess (no fork server), with this checkout's code."""
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=cli_env(cwd, env),
                          capture_output=True, text=True, timeout=timeout)


class CLIServer:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=cli_env(ROOT))
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def run(self, args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300):
        cwd = Path(cwd)
        out, err = cwd / f".cli_{time.monotonic_ns()}.out", cwd / f".cli_{time.monotonic_ns()}.err"
        job = {"args": list(args), "cwd": str(cwd), "env": cli_env(cwd, env), "out": str(out), "err": str(err),
               "timeout": timeout}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the CLI fork server died")
        rc = json.loads(line)["rc"]
        res = SimpleNamespace(returncode=rc, stdout=out.read_text(), stderr=err.read_text())
        out.unlink()
        err.unlink()
        return res

    def run_together(self, jobs: list[tuple[list[str], Path]], timeout: int = 300, frozen_now: str = "") -> list:
        """Start all commands at once (forked within milliseconds of each other); wait for all. `frozen_now` (ISO
        time) fixes the clock Hydra's ${now:...} reads, so the runs provably start "in the same second"."""
        files = []
        for args, cwd in jobs:
            out, err = Path(cwd) / f".cli_{time.monotonic_ns()}.out", Path(cwd) / f".cli_{time.monotonic_ns()}.err"
            files.append((out, err))
            job = {"args": list(args), "cwd": str(cwd), "env": cli_env(Path(cwd)), "out": str(out), "err": str(err),
                   "timeout": timeout, "together": True, "frozen_now": frozen_now}
            self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.write(json.dumps({"go": True}) + "\n")
        self.proc.stdin.flush()
        results = []
        for out, err in files:
            rc = json.loads(self.proc.stdout.readline())["rc"]
            results.append(SimpleNamespace(returncode=rc, stdout=out.read_text(), stderr=err.read_text()))
        return results

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_SHARED: CLIServer | None = None


def shared_server() -> CLIServer:
    """One server for the whole pytest process (its start costs the imports once), closed at exit."""
    global _SHARED
    if _SHARED is None or _SHARED.proc.poll() is not None:
        import atexit

        _SHARED = CLIServer()
        atexit.register(_SHARED.close)
    return _SHARED


def _child(job: dict) -> int:
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    for fd, name in ((1, job["out"]), (2, job["err"])):
        f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.argv = [str(ROOT / "train.py"), *job["args"]]
    if job.get("frozen_now"):  # make ${now:...} (the run dir's time stamp) the same for every child
        import datetime

        import hydra.core.utils as hcu

        frozen = datetime.datetime.fromisoformat(job["frozen_now"])

        class Frozen(datetime.datetime):
            @classmethod
            def now(cls, tz=None):
                return frozen

        hcu.datetime = Frozen  # Hydra's ${now:} resolver reads hydra.core.utils.datetime.now()
    from dlf.run.cli import cli

    try:
        cli()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:  # what the interpreter does with an uncaught exception
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _serve() -> None:
    sys.path[:0] = [str(ROOT / "src"), str(TESTS)]
    import lightning  # noqa: F401 - the imports every child would pay for
    import torch  # noqa: F401

    import dlf.run.cli  # noqa: F401

    print(json.dumps({"ready": True}), flush=True)
    batch: list[dict] = []
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("together"):
            batch.append(job)
            continue
        jobs, batch = (batch, []) if job.get("go") else ([job], batch)
        pids = []
        for j in jobs:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _child(j)
                finally:
                    os._exit(code)
            pids.append((pid, time.monotonic() + j["timeout"]))
        for pid, deadline in pids:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                time.sleep(0.02)
            print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
