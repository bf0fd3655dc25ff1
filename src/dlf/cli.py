"""Moved to dlf.run.cli; `dlf.cli` stays that very module (tests/test_layers.py lists who still names it)."""

import sys

from dlf.run import cli as _moved

sys.modules[__name__] = _moved
