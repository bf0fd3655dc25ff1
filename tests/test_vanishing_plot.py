"""scripts/vanishing_plot.py draws docs/results.md's adding-problem rows: the test MSE against T, RNN and LSTM."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import vanishing_plot  # noqa: E402


def _row(key, values):
    return {"key": key, "values": {"test/mse": values}}


def test_points_are_the_rows_means(tmp_path):
    rows = [_row("adding_rnn_T50", [0.17, 0.18]), _row("adding_lstm_T200", [0.001, 0.003, 0.002]),
            _row("adding_lstm_T50", [0.0001]), _row("mnist1d_mlp", [0.5]), _row("adding_rnn_T200", [])]
    results = tmp_path / "results.md"
    results.write_text("# r\n\n<!-- reproduce-data\n" + json.dumps(rows) + "\n-->\n")
    pts = vanishing_plot.points(results)
    assert [p[0] for p in pts["lstm"]] == [50, 200] and [p[0] for p in pts["rnn"]] == [50]
    t, mean, std, n = pts["lstm"][1]
    assert abs(mean - 0.002) < 1e-12 and abs(std - 0.001) < 1e-12 and n == 3


def test_script_draws_the_stored_rows(tmp_path):
    out = tmp_path / "fig.png"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "vanishing_plot.py"), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(re.search(r"<!-- reproduce-data\n(.*?)\n-->", (ROOT / "docs" / "results.md").read_text(),
                                re.S).group(1))
    stored = {r["key"] for r in data if re.match(r"adding_(rnn|lstm)_T\d+$", r["key"])}
    assert all(f"T={k.rsplit('T', 1)[1]}:" in r.stdout for k in stored)
