"""A Python that lacks some installed packages, for tests of what a user without an extra sees (tests/
test_loggers_external.py). Put this folder first on PYTHONPATH and name the packages in DLF_TEST_WITHOUT (comma-separated,
e.g. `mlflow,hydra_plugins.hydra_optuna_sweeper`): Python runs this file at start-up, and from then on

- `import <name>` (and its submodules) fails with ModuleNotFoundError, as for a package that is not installed, and
  `importlib.util.find_spec` finds nothing;
- `pkgutil.walk_packages` / `iter_modules` do not list it: Hydra finds its plugins by walking the `hydra_plugins`
  namespace package and loads each module from its file, past the import system, so a hidden plugin must be unlisted too.

Nothing is uninstalled: other processes see the packages as before.
"""

import importlib.abc
import os
import pkgutil
import sys

HIDDEN = tuple(n.strip() for n in os.environ.get("DLF_TEST_WITHOUT", "").split(",") if n.strip())


def _hidden(name: str) -> bool:
    return any(name == h or name.startswith(h + ".") for h in HIDDEN)


class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if _hidden(fullname):
            raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
        return None


def _unlisted(walk):
    def listing(*args, **kwargs):
        return (m for m in walk(*args, **kwargs) if not _hidden(m.name))

    return listing


if HIDDEN:
    sys.meta_path.insert(0, _NotInstalled())
    pkgutil.walk_packages = _unlisted(pkgutil.walk_packages)
    pkgutil.iter_modules = _unlisted(pkgutil.iter_modules)
