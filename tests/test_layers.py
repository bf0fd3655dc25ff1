"""dlf's packages follow its import layers: foundation < course < run < tools (docs/design.md, "Layout").

The import graph is read from the source (every `import` and `from ... import`, at module level and inside functions):
no cycle anywhere in src/dlf, and no import runs up a layer. Old module paths keep importing (thin shims), no function
in dlf/run/ is longer than 40 lines, and the five places that built a system from a config are one (dlf.run.build).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "dlf"

FOUNDATION = {"dlf", "dlf.errors", "dlf.console", "dlf.faults", "dlf.distributed", "dlf.lightning_internals",
              "dlf.hydra_internals", "dlf.loggers", "dlf.tracking", "dlf.fast_logging"}
COURSE = ("dlf.nets", "dlf.systems", "dlf.data", "dlf.metrics", "dlf.callbacks")
LAYERS = {"foundation": 0, "course": 1, "run": 2, "tools": 3}

# Old module paths (before the packages) and who still names them: each keeps importing, as the same objects.
SHIMS = {
    "dlf.cli": ("dlf.run.cli", "configs of old run dirs (hydra.callbacks: dlf.cli.Startup), console scripts of older "
                               "installs (dlf-train = dlf.cli:cli)"),
    "dlf.train": ("dlf.run.train", "the notebooks (dlf.train.run, dlf.train.CONFIG_DIR)"),
    "dlf.checkpoint": ("dlf.run.checkpoint", "the notebooks (load_system)"),
    "dlf.speed": ("dlf.run.speed", "notebook 04 of earlier clones (model_config)"),
    "dlf.sweep": ("dlf.run.sweep", "old run dirs' .hydra/ (dlf.sweep.SweepSummary; --experimental-rerun)"),
    "dlf.compare": ("dlf.tools.compare", "`python -m dlf.compare`, console scripts of older installs"),
    "dlf.generate": ("dlf.tools.generate", "console scripts of older installs (dlf-generate = dlf.generate:main)"),
    "dlf.sample": ("dlf.tools.sample", "the notebooks (load_model, generate), older console scripts (dlf.sample:cli)"),
}
NAMED = {"dlf.cli": ["Startup", "cli"], "dlf.train": ["run", "CONFIG_DIR"], "dlf.checkpoint": ["load_system"],
         "dlf.speed": ["model_config", "apply"], "dlf.sweep": ["SweepSummary", "job_dir_name", "continue_job"],
         "dlf.compare": ["main", "summarize"], "dlf.generate": ["main", "load_gan"],
         "dlf.sample": ["cli", "load_model", "generate", "next_char_probs"]}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py") if _module_name(p) not in SHIMS}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The dlf modules `name` imports anywhere in its file (a `from dlf.x import y` names dlf.x.y if that is a module)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods) | set(SHIMS)
    return {name: _imports(name, path, known) for name, path in mods.items()}


# The one import that runs up a layer, on purpose: the package root's `dlf.load` (the user's one call to get a trained
# model back) is dlf.run.checkpoint.load, imported on first use (PEP 562 __getattr__), so importing dlf or any
# foundation module still imports nothing above it (test_dlf_load_is_imported_on_first_use).
# Likewise `dlf.zoo` (the registry of trained models) from the package root, and dlf.load's zoo-name hook
# (dlf.run.checkpoint.zoo_checkpoint) asks the registry for a name's checked weights file.
DOORS = {("dlf", "dlf.run.checkpoint"), ("dlf", "dlf.zoo"), ("dlf.run.checkpoint", "dlf.zoo.store")}


def layer(name: str) -> int:
    if name in FOUNDATION:
        return LAYERS["foundation"]
    if name.startswith(COURSE):
        return LAYERS["course"]
    if name.startswith("dlf.run"):
        return LAYERS["run"]
    if name.startswith(("dlf.tools", "dlf.zoo")):
        return LAYERS["tools"]
    raise AssertionError(f"{name} is in no layer: add it to one (tests/test_layers.py and docs/design.md)")


def test_every_module_is_in_a_layer_and_no_import_runs_up_one():
    graph = _graph()
    up = [f"{a} ({layer(a)}) imports {b} ({layer(b)})" for a, deps in graph.items() for b in deps
          if (b in SHIMS or layer(b) > layer(a)) and (a, b) not in DOORS]
    assert not up, "imports that run up a layer or through an old path:\n" + "\n".join(sorted(up))


def test_dlf_load_is_imported_on_first_use():
    import subprocess
    import sys

    code = ("import sys, dlf, dlf.errors; assert not [m for m in sys.modules if m.startswith('dlf.run')], 'eager'; "
            "from dlf.run.checkpoint import load; assert dlf.load is load; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert r.stdout.strip() == "ok", r.stderr[-2000:]


def test_no_import_cycle_in_dlf():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_graph_sees_imports_inside_functions():
    """The checker itself: a function-level import counts (dlf.run.train builds through dlf.run.build there)."""
    graph = _graph()
    assert "dlf.run.build" in graph["dlf.run.train"] and "dlf.run.train" in graph["dlf.run.cli"]
    assert "dlf.run.cli" not in graph["dlf.run.train"]  # one owner of the command line


@pytest.mark.parametrize("old", list(SHIMS))
def test_old_module_paths_keep_importing(old):
    new, who = SHIMS[old]
    shim = importlib.import_module(old)
    moved = importlib.import_module(new)
    for name in NAMED[old]:
        assert hasattr(shim, name), f"{old}.{name} ({who}) no longer imports"
        if hasattr(moved, name):
            assert getattr(shim, name) is getattr(moved, name)
    assert len((PKG / f"{old.split('.')[1]}.py").read_text().splitlines()) <= 12  # a thin shim, nothing of its own


def test_python_m_dlf_compare_still_runs(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dlf.compare", "--help"], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and "dlf-compare" in r.stdout + r.stderr, r.stderr[-2000:]


def test_no_function_in_dlf_run_is_over_40_lines():
    long = []
    for path in sorted((PKG / "run").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 40:
                    long.append(f"dlf/run/{path.name}:{node.lineno} {node.name}: {n} lines")
    assert not long, "\n".join(long)


def test_a_system_is_built_in_one_place():
    """`instantiate(... cfg.model ...)` appears once in src/ and scripts/: dlf.run.build.build_system (bench's fallback
    for an older dlf without dlf.run aside)."""
    root = SRC.parent
    builders = []
    for path in [*PKG.rglob("*.py"), *(root / "scripts").glob("*.py")]:
        text = path.read_text()
        for i, line in enumerate(text.splitlines(), 1):
            if "instantiate(" in line and "model" in line and "_partial_=True" in line:
                builders.append(f"{path.relative_to(root)}:{i}")
    ours = [b for b in builders if not b.startswith("scripts/bench_workloads.py")]
    assert len(ours) == 1 and ours[0].startswith("src/dlf/run/build.py:"), builders


def test_design_md_lists_every_module():
    """docs/design.md's layout names every module of src/dlf (a package's modules by their file name under it)."""
    text = (SRC.parent / "docs" / "design.md").read_text()
    layout = text[text.index("## Layout"):text.index("## Decisions")]
    missing = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if path.name == "__init__.py" and path.parent != PKG:
            continue
        listed = f"src/{rel}" in layout or (f"src/{path.parent.relative_to(SRC).as_posix()}/" in layout
                                            and f"  {path.name} " in layout)
        if not listed and path.stem not in {m.split(".")[1] for m in SHIMS}:
            missing.append(rel)
    assert not missing, f"docs/design.md's layout does not list {missing}"
