"""dlf as people install it: a wheel built from this checkout, installed with --no-deps into a fresh venv that sees the
dependencies, run from an unrelated folder (the installed dlf, not the clone); and a user's own model and dataset
configs, outside dlf's tree, picked up through Hydra's config search path (examples/user_model)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from cli_server import cli_env, run_train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "user_model"


def _plain_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DLF_ROOT", "HYDRA_FULL_ERROR")}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def test_wheel_installs_and_trains_from_any_folder(tmp_path):
    """About 35 s on the loaded 2-core machine (build, venv, install, one debug=fast run)."""
    pytest.importorskip("build")
    src = tmp_path / "checkout"  # build from a copy: the build leaves build/ and *.egg-info beside the sources
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (wheel,) = dist.glob("dlf-*.whl")

    venv = tmp_path / "venv"  # a fresh venv whose only view of the dependencies is the test's site-packages
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--system-site-packages",
                    "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    own = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                       text=True).strip())
    # a plain path line (not a site dir): the dependencies are importable, the clone's editable dlf hook is not run
    (own / "deps.pth").write_text(site.getsitepackages()[0] + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                        str(wheel)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.check_output([str(py), "-c", "import dlf.run.train; print(dlf.run.train.CONFIG_DIR)"], cwd=elsewhere,
                                    env=_plain_env(), text=True).strip()
    assert where.startswith(str(own)), where  # the installed dlf and its configs, not the clone's
    plugin = subprocess.check_output([str(py), "-c", "import hydra_plugins.dlf_optuna_sweeper as m; print(m.__file__)"],
                                     cwd=elsewhere, env=_plain_env(), text=True).strip()
    assert plugin.startswith(str(own)), plugin  # dlf's Optuna sweeper ships in the wheel (Hydra's plugin package)
    r = subprocess.run([str(venv / "bin" / "dlf-train"), "debug=fast", "trainer=cpu", "hydra.run.dir=run"],
                       cwd=elsewhere, env=_plain_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((elsewhere / "run" / "result.json").read_text())["status"] == "ok"
    # the zoo's weights ship in the wheel: a trained model by name, from the installed package, its sha256 checked
    code = ("import dlf, dlf.zoo as z; m = z.get_model('mlp_xor'); p = m.predict([[0, 0], [0, 1], [1, 0], [1, 1]]); "
            "print(z.weights_path('mlp_xor')); print([round(float(v)) for v in p])")
    out = subprocess.check_output([str(py), "-c", code], cwd=elsewhere, env=_plain_env(), text=True).split("\n")
    assert out[0].startswith(str(own)) and out[1] == "[0, 1, 1, 0]", out
    # the issue's three lines: the digits CNN from the installed package on load_digits()'s raw test images
    code = ("import dlf, numpy as np; from sklearn.datasets import load_digits; d = load_digits(); "
            "i = dlf.zoo.test_split('cnn_digits'); m = dlf.zoo.get_model('cnn_digits'); "
            "print(int((np.asarray(m.predict(d.images[i])) == d.target[i]).sum()), len(i), "
            "dlf.zoo.card('cnn_digits')['test']['test/acc'])")
    correct, n, acc = subprocess.check_output([str(py), "-c", code], cwd=elsewhere, env=_plain_env(), text=True).split()
    assert int(correct) == round(float(acc) * int(n)), (correct, n, acc)
    r = subprocess.run([str(venv / "bin" / "dlf-zoo"), "eval", "mlp_xor", "--data-dir", "data"], cwd=elsewhere,
                       env=_plain_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "mlp_xor: ok" in r.stdout, r.stdout + r.stderr[-2000:]


def test_user_model_and_data_through_config_dir(tmp_path):
    """examples/user_model: `--config-dir configs model=my_gru` trains the user's GRU on the user's data and learns."""
    r = run_train(["--config-dir", str(EXAMPLE / "configs"), "model=my_gru", "trainer=cpu", "logger=none",
                   "hydra.run.dir=run", "trainer.enable_progress_bar=false"], cwd=tmp_path,
                  env={"PYTHONPATH": os.pathsep.join([cli_env(tmp_path)["PYTHONPATH"], str(EXAMPLE)])})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["status"] == "ok" and res["monitor"] == "val/acc" and res["best"] >= 0.9, res  # 3 classes: chance 1/3


def test_user_module_not_on_pythonpath_is_one_line(tmp_path):
    """The example run without its folder on PYTHONPATH: the line names the _target_ and says to put the folder on
    PYTHONPATH (before: `ModuleNotFoundError: No module named 'my_models'`)."""
    r = run_train(["--config-dir", str(EXAMPLE / "configs"), "model=my_gru", "trainer=cpu", "logger=none",
                   "hydra.run.dir=run"], cwd=tmp_path)
    line = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert line.startswith("dlf: error: data._target_='my_models.SineWaves' cannot be imported: no module named "
                           "'my_models'") and "PYTHONPATH=. dlf-train" in line, line
    assert json.loads((tmp_path / "run" / "result.json").read_text())["error"] == line[len("dlf: error: "):]


def test_user_options_join_dlf_options_through_the_search_path(tmp_path):
    """hydra.searchpath finds the user's configs too, and an unknown option lists the user's options beside dlf's."""
    env = {"PYTHONPATH": os.pathsep.join([cli_env(tmp_path)["PYTHONPATH"], str(EXAMPLE)])}
    r = run_train([f"hydra.searchpath=[file://{EXAMPLE / 'configs'}]", "model=my_gru", "--cfg", "job"], cwd=tmp_path,
                  env=env)
    assert r.returncode == 0 and "my_models.build_gru" in r.stdout, r.stderr[-2000:]
    r = run_train(["--config-dir", str(EXAMPLE / "configs"), "model=my_gruu"], cwd=tmp_path, env=env)
    line = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and line.startswith("dlf: error: unknown model 'my_gruu'") and "my_gru, rnn" in line, line
