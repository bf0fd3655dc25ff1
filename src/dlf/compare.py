"""Moved to dlf.tools.compare; `python -m dlf.compare` and `dlf.compare.*` keep working (tests/test_layers.py)."""

import sys

from dlf.tools import compare as _moved

if __name__ == "__main__":
    _moved.main()
else:
    sys.modules[__name__] = _moved
