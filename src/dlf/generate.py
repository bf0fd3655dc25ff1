"""Moved to dlf.tools.generate; `dlf.generate` stays that very module (tests/test_layers.py lists who still names it)."""

import sys

from dlf.tools import generate as _moved

sys.modules[__name__] = _moved
