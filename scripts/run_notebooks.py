"""Re-execute the notebooks in place, outputs and figures included: `python scripts/run_notebooks.py [NAME ...]`.

Each notebook runs top to bottom in a fresh kernel (nbclient, the `python3` kernel of this interpreter) with
notebooks/ as its working directory, and is written back with its outputs so it reads on GitHub. `--check` runs them
without writing anything. Needs the `notebooks` extra: `pip install -e ".[notebooks]"`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def execute(path: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell of the notebook at `path` in a fresh kernel; raises nbclient's CellExecutionError on an error."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="notebook names or stems (default: all of notebooks/*.ipynb)")
    ap.add_argument("--check", action="store_true", help="execute only; leave the files as they are")
    ap.add_argument("--timeout", type=int, default=600, help="seconds a cell may run")
    args = ap.parse_args(argv)
    paths = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if p.name in args.names or p.stem in args.names]
        if not paths:
            print(f"run_notebooks: no notebook named {' '.join(args.names)} in {NOTEBOOK_DIR}", file=sys.stderr)
            return 2
    for path in paths:
        t0 = time.perf_counter()
        nb = execute(path, args.timeout)
        took = time.perf_counter() - t0
        if not args.check:
            nbformat.write(nb, path)
        print(f"{path.name}: {took:.1f} s{'' if args.check else ' (written)'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
