"""The one piece of Hydra's private machinery dlf changes (written against hydra-core 1.3).

Hydra composes the whole config twice on every run: once in `Hydra.get_mode` (hydra/_internal/hydra.py) only to read
`hydra.mode` from it, then again for the run itself. On dlf's config tree the first is wasted work, about 0.1 s of CPU
per start (a sixth of what `python train.py debug=fast` spends above `import torch, lightning`): no config under
src/dlf/configs sets `hydra.mode` (tests/test_startup.py checks this), so the only ways a mode can be chosen are the
command line's `-m` and a `hydra.mode=...` override. `skip_mode_compose` answers `get_mode` from the command line
when it can know the answer (dlf's own config tree, no `hydra.mode` override, no config dir or search path added),
and asks Hydra otherwise. Hydra then does exactly what it does when the composed config leaves `hydra.mode` unset.
Nothing public serves: `hydra.main` always calls `get_mode`. A Hydra without the method is a one-line error naming it.
"""

from __future__ import annotations

import contextlib
import sys

from dlf.errors import DlfError

# Flags that add configs dlf does not know (a user's config dir or search path may set hydra.mode)
_OTHER_CONFIGS = ("-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name", "--experimental-rerun")


def mode_is_on_command_line(overrides: list[str], argv: list[str]) -> bool:
    """Whether the command line alone decides the run mode: no override names hydra.mode or adds a search path, and no
    flag brings in configs beyond dlf's own."""
    for o in overrides:
        key = o.lstrip("~+").split("=", 1)[0]
        if key in ("hydra.mode", "hydra.searchpath", "hydra") or key.startswith("hydra.searchpath"):
            return False
    return not any(a.split("=", 1)[0] in _OTHER_CONFIGS for a in argv)


@contextlib.contextmanager
def skip_mode_compose():
    """For the length of the block, `Hydra.get_mode` returns None (mode from `-m` or not) without composing when
    `mode_is_on_command_line`; otherwise Hydra's own method runs."""
    try:
        from hydra._internal.hydra import Hydra
    except ImportError:  # pragma: no cover - a Hydra that moved its internals
        raise DlfError("dlf changes hydra._internal.hydra.Hydra.get_mode, which this hydra-core does not have: "
                       "install the hydra-core version pyproject.toml names, or update src/dlf/hydra_internals.py") from None
    original = getattr(Hydra, "get_mode", None)
    if original is None:
        raise DlfError("dlf changes Hydra.get_mode, which this hydra-core does not have: install the hydra-core "
                       "version pyproject.toml names, or update src/dlf/hydra_internals.py")

    def get_mode(self, config_name, overrides):
        if mode_is_on_command_line(list(overrides), sys.argv[1:]):
            return None
        return original(self, config_name, overrides)

    Hydra.get_mode = get_mode
    try:
        yield
    finally:
        Hydra.get_mode = original
