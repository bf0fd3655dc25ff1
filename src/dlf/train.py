"""Moved to dlf.run.train; `dlf.train` stays that very module (tests/test_layers.py lists who still names it)."""

import sys

from dlf.run import train as _moved

sys.modules[__name__] = _moved
