"""The notebooks: each one runs top to bottom in a fresh kernel (nbclient) without an error, and is stored with its
outputs, figures included, so that it reads on GitHub without running. `python scripts/run_notebooks.py` refreshes
the stored outputs. The notebooks assert their own claims (gradients equal to 1e-10, the LSTM solving the adding
problem, ...), so a notebook whose result changes fails here."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")
nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CHAPTERS = ["01_neuron_and_activations", "02_xor_backprop", "03_gradient_descent_variants", "04_rnn_bptt", "05_lstm",
            "06_cnn", "07_gan"]


def test_one_notebook_per_chapter():
    assert [p.stem for p in NOTEBOOKS] == CHAPTERS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()  # raises on any error
    print(f"{path.name}: {time.perf_counter() - t0:.1f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure drawn"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_stored_with_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "a cell was never run: python scripts/run_notebooks.py"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], "stored with an error"
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1, "stored without its figures"
    first = "".join(c.source for c in nb.cells[:3])
    assert 'pip", "install' in first, "the first cells must say how to install dlf"
    assert "## Try this" in nb.cells[-1].source and "train.py" in nb.cells[-1].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_cells_install_what_the_notebook_needs(path):
    """The "Running it" cell names the extra that has JupyterLab (`.[notebooks]` has only the kernel, so its
    `jupyter lab` was not found), and no cell asks the reader to fill in a placeholder URL."""
    import json
    import re

    cells = json.loads(path.read_text())["cells"][:3]
    text = ["".join(c["source"]) for c in cells]
    running = next(t for t in text if t.startswith("**Running it.**"))
    jupyter = re.search(r"^jupyter = \[(.*)\]$", (NOTEBOOK_DIR.parent / "pyproject.toml").read_text(), re.M).group(1)
    assert 'pip install -e ".[jupyter]"' in running and "jupyter lab" in running, running
    assert '"jupyterlab' in jupyter, jupyter  # the extra named has JupyterLab
    assert not any("<owner>" in t or "placeholder" in t for t in text), text
    install = next(t for t in text if 'pip", "install' in t)
    assert 'find_spec("dlf") is None' in install and "Path.cwd().parent" in install, install


@pytest.mark.parametrize("backend,expected", [(None, "agg"),
                                              ("module://matplotlib_inline.backend_inline", "inline")])
def test_dlf_figures_keep_jupyters_inline_backend(backend, expected):
    """dlf's figure module switches matplotlib to Agg (no display) except inside Jupyter, where it would stop
    plt.show() from drawing every figure after the first dlf run."""
    import os
    import subprocess
    import sys

    pytest.importorskip("matplotlib_inline")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if backend:
        env["MPLBACKEND"] = backend
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    out = subprocess.run([sys.executable, "-c", "import dlf.callbacks.figures, matplotlib; print(matplotlib.get_backend())"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert expected in out.strip().lower()
