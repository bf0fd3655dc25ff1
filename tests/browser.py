"""Headless Chromium for the tests that open a page as a person would (tests/test_site.py: the documentation site,
tests/test_report.py: report.html) and scripts/screenshots.py: Debian's chromium + chromium-driver through selenium.

`need` skips a test whose tools are missing, except under CI=true, where it fails (.ci/run installs Chromium where apt
and root are available). `browser()` opens one that cannot reach any host but 127.0.0.1 and keeps the page's console
log; `state(driver)` is what a test asserts on: each image loaded (naturalWidth > 0), the page's text, its resources.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket

CI = os.environ.get("CI", "").lower() == "true"


def need(ok: bool, what: str):
    if not ok:
        import pytest

        if CI:
            pytest.fail(f"{what} (under CI=true this fails, it does not skip)")
        pytest.skip(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser(width: int = 1280, height: int = 1000, check=need):
    """A headless Chromium (selenium); `check(ok, what)` says what is missing (need: skip, or fail under CI=true)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    check(bool(chromium and driver), "Chromium is missing: apt-get install chromium chromium-driver")
    check(importlib.util.find_spec("selenium") is not None, 'selenium is not installed: pip install -e ".[docs]"')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # any other host fails, loudly
                "--no-first-run", "--disable-background-networking", "--disable-component-update"]:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(executable_path=driver))


STATE = """
const imgs = [...document.images].map(i => ({src: i.src.slice(0, 80), ok: i.complete && i.naturalWidth > 0}));
return {title: document.title, h1: (document.querySelector('article h1') || {}).textContent || '',
        text: (document.querySelector('article') || document.body).innerText.length,
        math: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_CHTML, mjx-container').length,
        mathErrors: document.querySelectorAll('.MathJax_Error, merror, [data-mjx-error]').length,
        untypeset: [...document.querySelectorAll('.arithmatex')].filter(e => !e.querySelector('.MathJax')).length,
        imgs: imgs,
        resources: performance.getEntriesByType('resource').map(r => r.name)};
"""


def state(driver) -> dict:
    return driver.execute_script(STATE)


def severe(driver) -> list:
    """The page's console errors since the last call."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
