"""The documentation site (mkdocs.yml, scripts/site_hooks.py): `mkdocs build --strict` builds it offline from this
checkout; nothing in it loads an http(s) asset; served on 127.0.0.1 and opened in headless Chromium, the home page, a
family page, an "equation to the line" page, a notebook page and the API page render with their equations typeset,
every image loaded, no console error and no request leaving 127.0.0.1.

Needs the `docs` extra (mkdocs and its plugins, selenium) and Debian's chromium + chromium-driver (.ci/run installs
them where apt and root are available). Without them the test skips, except under CI=true, where it fails.
DLF_SITE_SCREENSHOTS=docs/figures writes the pages' screenshots there (site_*.png, linked from the README).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import browser as open_browser
from browser import free_port, need, severe, state

ROOT = Path(__file__).resolve().parents[1]
PAGES = {  # screenshot name -> page, and whether it must show typeset equations; then every other chapter, unshot
    "home": ("", True),
    "family": ("cnn/", False),
    "equations": ("equations/lstm/", True),
    "notebook": ("notebooks/05_lstm/", True),
    "api": ("api/", False),
    **{f"notebooks/{nb.stem}/": (f"notebooks/{nb.stem}/", True)
       for nb in sorted((ROOT / "notebooks").glob("*.ipynb")) if nb.stem != "05_lstm"},
    **{f"equations/{f}/": (f"equations/{f}/", True) for f in ["mlp", "cnn", "gan"]},
}


def _hooks():
    need(importlib.util.find_spec("mkdocs") is not None, 'mkdocs is not installed: pip install -e ".[docs]"')
    spec = importlib.util.spec_from_file_location("site_hooks", ROOT / "scripts" / "site_hooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _hooks()
    out = tmp_path_factory.mktemp("site") / "site"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_MKDOCS_2_WARNING": "1"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    print(f"\nsite: mkdocs build --strict took {time.perf_counter() - t0:.1f} s")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


# ---------------------------------------------------------------------------------------------------- offline, statically

class _Assets(HTMLParser):
    """The URLs an HTML page would load by itself (not the pages its <a href> links to)."""

    LOADS = {"script": ["src"], "img": ["src", "srcset"], "iframe": ["src"], "source": ["src", "srcset"],
             "video": ["src", "poster"], "audio": ["src"], "embed": ["src"], "object": ["data"], "track": ["src"],
             "input": ["src"]}
    LINK_RELS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "preload", "modulepreload", "prefetch", "manifest",
                 "mask-icon", "preconnect", "dns-prefetch"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self._style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in self.LOADS.get(tag, []):
            if a.get(key):
                self.urls += [u.strip().split(" ")[0] for u in a[key].split(",")] if key == "srcset" else [a[key]]
        if tag == "link" and set((a.get("rel") or "").lower().split()) & self.LINK_RELS and a.get("href"):
            self.urls.append(a["href"])
        if a.get("style"):
            self.urls += _css_urls(a["style"])
        self._style = tag == "style"

    def handle_data(self, data):
        if self._style:
            self.urls += _css_urls(data)

    def handle_endtag(self, tag):
        self._style = False


def _css_urls(css: str) -> list[str]:
    return re.findall(r"""url\(\s*['"]?([^'")\s]+)""", css) + re.findall(r"""@import\s+['"]([^'"]+)""", css)


_REMOTE = re.compile(r"^(?:https?:)?//", re.I)
# URL strings in the JavaScript the site ships, each with what keeps it from loading (checked below or by configuration)
_JS_URLS = {
    "https://unpkg.com/mermaid": "Material loads mermaid from this CDN only on a page with a .mermaid diagram: none has one",
    "https://api.github.com/": "Material asks GitHub for stars only when mkdocs.yml sets repo_url: it does not",
    "https://unpkg.com/resize-observer-polyfill": "Material's polyfill for a browser without ResizeObserver (none today)",
    "https://github.com/mathjax/MathJax/tree/master/fonts": "a link in MathJax's missing-font message, not a load",
    # XML namespace names: identifiers that are never fetched
    "http://www.w3.org/1998/Math/MathML": "", "http://www.w3.org/1999/xhtml": "", "http://www.w3.org/2000/svg": "",
    "http://www.w3.org/1999/XSL/Transform": "", "http://exslt.org/common": "", "http://www.w3.org/1999/xlink": "",
}


def _js_strings(js: str) -> list[str]:
    js = re.sub(r"/\*.*?\*/", "", js, flags=re.S)  # licence and doc comments
    js = re.sub(r"(?m)(^|\s)//.*$", r"\1", js)  # line comments (not the // of a URL, which follows a colon)
    return re.findall(r"""["'`](https?://[^"'`\s]*)""", js)


def test_built_site_loads_no_remote_asset(site):
    remote = []
    for html in site.rglob("*.html"):
        parser = _Assets()
        parser.feed(html.read_text(encoding="utf-8"))
        remote += [f"{html.relative_to(site)}: {u}" for u in parser.urls if _REMOTE.match(u)]
        assert not re.search(r'class="[^"]*\bmermaid\b', html.read_text(encoding="utf-8")), html  # see _JS_URLS
    for css in site.rglob("*.css"):
        remote += [f"{css.relative_to(site)}: {u}" for u in _css_urls(css.read_text(encoding="utf-8")) if _REMOTE.match(u)]
    for js in site.rglob("*.js"):
        for u in _js_strings(js.read_text(encoding="utf-8", errors="replace")):
            if not any(u.startswith(k) for k in _JS_URLS) and re.match(r"https?://[a-z0-9.-]+\.[a-z]{2,}/\S", u, re.I):
                remote.append(f"{js.relative_to(site)}: {u}")
    assert not remote, "assets loaded from the network:\n" + "\n".join(sorted(set(remote)))
    assert "repo_url" not in (ROOT / "mkdocs.yml").read_text()  # see _JS_URLS


def test_every_chapter_family_and_api_page_is_built(site):
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = (site / "notebooks" / nb.stem / "index.html").read_text(encoding="utf-8")
        assert "data:image/png;base64," in page, f"{nb.name}: its stored figures are not on its page"
    for name in ["cnn", "gan", "sequence", "mlp", "results", "bad_inputs", "using", "sweeps", "resuming", "scaling",
                 "testing", "notebooks", "zoo"]:
        assert (site / name / "index.html").is_file(), name
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ["load_run", "load_system", "dlf.systems", "dlf.nets", "dlf.data", "dlf.callbacks", "dlf.run.cli"]:
        assert name in api, name
    # the guide's pages hold what the README links to; README's two commands arrive whole on the home page (its marker
    # comments gone, its docs/ links made relative to the site)
    sweeps = (site / "sweeps" / "index.html").read_text(encoding="utf-8")
    assert "hparams_search" in sweeps and "Resuming a killed sweep" in sweeps
    home = (site / "index.html").read_text(encoding="utf-8")
    text = unescape(re.sub(r"<[^>]+>", "", home))
    assert "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python train.py" in text  # the two commands
    assert 'href="using/#installing-without-a-gpu"' in home and 'src="figures/optimizers_sweep.png"' in home
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "8&lt;--" not in text and "--8<--" not in text, page


def test_equation_pages_show_the_source_as_it_is_now(site):
    """The code beside each equation is the function's current source, extracted at build time."""
    hooks = _hooks()
    mlp = (site / "equations" / "mlp" / "index.html").read_text(encoding="utf-8")
    src = (ROOT / "src" / "dlf" / "nets" / "mlp.py").read_text(encoding="utf-8")
    lines = src.splitlines()
    line = next(i + 1 for i, s in enumerate(lines) if "# delta_{l-1} = delta_l W_l^T * f'(z_{l-1})" in s)
    first = next(i + 1 for i, s in enumerate(lines) if "def backward(ctx, grad_out)" in s) - 1  # its @staticmethod
    assert f"src/dlf/nets/mlp.py, line {first}: _Backprop.backward" in mlp
    assert f'<span class="normal">{line}</span>' in mlp  # the real line numbers
    text = re.sub(r"<[^>]+>", "", mlp)
    assert "delta = (delta @ weights[l].transpose(-2, -1)) * f_prime(zs[l - 1])" in text.replace("&#39;", "'")
    assert "test_scratch_backprop_equals_autograd" in text
    from mkdocs.exceptions import PluginError
    with pytest.raises(PluginError, match="no 'gone'"):
        hooks.source_block("dlf.nets.mlp._Backprop.gone")
    assert "def cell(self, x_t, s, k):" in hooks.source_block("dlf.nets.lstm.ScratchLSTM.cell")


def test_a_notebook_without_outputs_fails_the_build(tmp_path):
    hooks = _hooks()
    from mkdocs.exceptions import PluginError
    (tmp_path / "notebooks").mkdir()
    nb = json.loads((ROOT / "notebooks" / "01_neuron_and_activations.ipynb").read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    config = {"site_dir": str(tmp_path / "site"), "use_directory_urls": True}
    with pytest.raises(PluginError, match="01_x.ipynb has no stored outputs"):
        hooks.notebook_files(config, root=tmp_path)


# ---------------------------------------------------------------------------------------------------- in a real browser

@pytest.fixture
def served(site):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_site_in_chromium(served, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("DLF_SITE_SCREENSHOTS") or tmp_path)
    t0 = time.perf_counter()
    browser = open_browser()
    try:
        for name, (path, has_math) in PAGES.items():
            browser.get(served + path)
            WebDriverWait(browser, 60).until(lambda b: b.execute_script("return document.readyState") == "complete")
            if has_math:  # MathJax queues its typesetting after the load: wait until the queue has run
                browser.execute_script("window.__typeset = false; MathJax.Hub.Queue(() => { window.__typeset = true; });")
                WebDriverWait(browser, 60).until(lambda b: b.execute_script("return window.__typeset === true"))
            WebDriverWait(browser, 30).until(lambda b: all(i["ok"] for i in state(b)["imgs"]))
            s = state(browser)
            assert s["h1"].strip() and s["text"] > 500, (name, s["h1"], s["text"])
            if has_math:
                assert s["math"] > 0 and s["mathErrors"] == 0 and s["untypeset"] == 0, (name, s)
            assert all(i["ok"] for i in s["imgs"]), (name, [i for i in s["imgs"] if not i["ok"]])
            remote = [u for u in s["resources"] if not u.startswith(served)]
            assert not remote, (name, remote)
            errors = severe(browser)
            assert not errors, (name, errors)
            if name == path:  # the other chapters and equation pages: checked, not photographed
                print(f"site: {path}: {s['math']} equations typeset, {len(s['imgs'])} images")
                continue
            if name == "notebook":  # the screenshot shows a stored figure
                browser.execute_script("document.querySelector('.jupyter-wrapper img').scrollIntoView({block: 'center'})")
                time.sleep(1)  # the header's title swaps with a transition when the page scrolls
            shots.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(shots / f"site_{name}.png"))
            print(f"site: {name} ({path or '/'}): {s['math']} equations typeset, {len(s['imgs'])} images, "
                  f"{len(s['resources'])} local resources")
    finally:
        browser.quit()
    print(f"site: the browser check took {time.perf_counter() - t0:.1f} s")
