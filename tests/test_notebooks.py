"""The notebooks run: their code cells are executed in order (no Jupyter needed)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_code_runs(path):
    nb = json.loads(path.read_text())
    scope: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}", "exec"), scope)  # noqa: S102
    if path.stem == "01_backprop_by_hand":  # both nets trained to the same weights and solved XOR
        import torch

        auto, hand, x, y = scope["auto"], scope["hand"], scope["x"], scope["y"]
        with torch.no_grad():
            p_auto, p_hand = torch.sigmoid(auto(x)), torch.sigmoid(hand(x))
        torch.testing.assert_close(p_hand, p_auto, rtol=0, atol=1e-9)
        assert ((p_auto - y).abs() < 0.25).all()
