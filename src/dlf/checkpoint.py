"""Moved to dlf.run.checkpoint; `dlf.checkpoint` stays that very module (tests/test_layers.py lists who still names it)."""

import sys

from dlf.run import checkpoint as _moved

sys.modules[__name__] = _moved
