"""MkDocs hooks of the documentation site (mkdocs.yml `hooks:`), run by `mkdocs build --strict`.

- notebooks/*.ipynb become pages (notebooks/<name>/), rendered by mkdocs-jupyter from their STORED outputs; a notebook
  without any output fails the build (the site shows what a run printed, it does not execute anything).
- MathJax is served from the copy that the `jupyter-server-mathjax` package installs (site/assets/mathjax/): no CDN.
  mkdocs-jupyter's own MathJax <script> (a CDN unless told otherwise) is given a placeholder URL and removed here.
- `{{ source("dlf.nets.mlp._Backprop.backward") }}` on a line of its own is replaced by that function's (or class's)
  source, read from this checkout's src/ at build time, so a page cannot drift from the code; `{{ source("tests/x.py::name")
  }}` does the same for a test. An unknown name fails the build.
- The few blocks of README.md that a page shows too (the two commands on the home page, the generated config-groups table
  on docs/using.md) arrive through pymdownx.snippets, written once in the README; their links are relative to the
  repository root (`docs/scaling.md`), so a Markdown preprocessor run after the snippets makes them relative to docs/.
  Everything else lives in docs/ (the README is the short guide that links to it).
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from pathlib import Path

from markdown import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
MATHJAX_PLACEHOLDER = "dlf-site-mathjax"
_SOURCE = re.compile(r'^([ \t]*)\{\{ source\("([^"]+)"\) \}\}$', re.M)
# repository-root links of README's blocks -> docs/-relative (the pages that include them sit in docs/)
_LINKS = [(re.compile(r"\]\(docs/"), "]("), (re.compile(r"\]\(\.\./README\.md\)"), "](index.md)"),
          (re.compile(r"\]\(#two-commands\)"), "](index.md#two-commands)")]


def notebook_files(config, root: Path = ROOT) -> list[File]:
    """notebooks/*.ipynb as pages; one without a single stored output fails the build."""
    files = []
    for nb in sorted((root / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        outputs = sum(len(c.get("outputs", [])) for c in cells if c["cell_type"] == "code")
        if outputs == 0:
            raise PluginError(f"notebooks/{nb.name} has no stored outputs: run it (python scripts/run_notebooks.py) "
                              "and commit it with its outputs; the site does not execute notebooks")
        files.append(File(f"notebooks/{nb.name}", str(root), config["site_dir"], config["use_directory_urls"]))
    return files


def _mathjax_files(config) -> list[File]:
    try:
        import jupyter_server_mathjax
    except ImportError as e:
        raise PluginError("MathJax is served from the jupyter-server-mathjax package: pip install -e \".[docs]\"") from e
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    return [File.generated(config, f"assets/mathjax/{p.relative_to(static).as_posix()}", abs_src_path=str(p))
            for p in sorted(static.rglob("*")) if p.is_file() and "a11y" not in p.parts]  # a11y: from a CDN, unused


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns the .ipynb files into notebook pages
def on_files(files, config):
    for f in [*notebook_files(config), *_mathjax_files(config)]:
        files.append(f)
    return files


def _node(tree: ast.Module, names: list[str], what: str):
    node = tree
    for name in names:
        found = [n for n in ast.iter_child_nodes(node)
                 if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
        if not found:
            raise PluginError(f"source({what!r}): no {name!r} there: the page names code that is gone; fix the name")
        node = found[0]
    return node


def _locate(what: str) -> tuple[Path, list[str]]:
    if "::" in what:  # tests/test_mlp.py::test_x
        path, _, qual = what.partition("::")
        return ROOT / path, qual.split(".")
    parts = what.split(".")
    for i in range(len(parts), 0, -1):
        base = ROOT / "src" / Path(*parts[:i])
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                return cand, parts[i:]
    raise PluginError(f"source({what!r}): no such module under src/")


def source_block(what: str) -> str:
    """A fenced block with the source of `what` (dotted name under src/, or tests/file.py::name), its real line numbers,
    and the lines that carry an equation comment (`# ... = ...`) highlighted."""
    path, names = _locate(what)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if names:
        node = _node(ast.parse(text), names, what)
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        body = lines[first - 1:node.end_lineno]
    else:
        first, body = 1, lines
    body = textwrap.dedent("\n".join(body)).splitlines()
    marked = [str(i + 1) for i, line in enumerate(body) if re.search(r"#.*=", line)]
    rel = path.relative_to(ROOT).as_posix()
    title = f"{rel}, line {first}: {'.'.join(names) or rel}"
    hl = f' hl_lines="{" ".join(marked)}"' if marked else ""
    return f'```python title="{title}" linenums="{first}"{hl}\n' + "\n".join(body) + "\n```"


def on_page_markdown(markdown, page, config, files):
    return _SOURCE.sub(lambda m: textwrap.indent(source_block(m.group(2)), m.group(1)), markdown)


class _RootLinks(Preprocessor):
    def run(self, lines):
        text = "\n".join(lines)
        for pattern, repl in _LINKS:
            text = pattern.sub(repl, text)
        return text.split("\n")


class RootLinksExtension(Extension):
    def extendMarkdown(self, md):
        md.preprocessors.register(_RootLinks(md), "dlf_root_links", 1)  # after pymdownx.snippets (32)


def on_config(config):
    config["markdown_extensions"].append(RootLinksExtension())
    return config


def on_post_page(output, page, config):
    """Drop mkdocs-jupyter's own MathJax <script> (the site loads MathJax once, from its local copy)."""
    return re.sub(rf'<script src="{MATHJAX_PLACEHOLDER}">\s*</script>', "", output)
