"""Moved to dlf.tools.sample; `dlf.sample` stays that very module (tests/test_layers.py lists who still names it)."""

import sys

from dlf.tools import sample as _moved

sys.modules[__name__] = _moved
