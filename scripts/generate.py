"""`python scripts/generate.py <run dir> [-n N] [-o DIR] [--ckpt best|last|PATH]`: samples from a trained GAN.
The same as the `dlf-generate` command; the code is in dlf.tools.generate."""

import sys
from pathlib import Path

try:
    from dlf.tools.generate import main
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from dlf.tools.generate import main

if __name__ == "__main__":
    main()
