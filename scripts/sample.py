"""`python scripts/sample.py <run dir> --prompt "The sun rises in the"`: the same as the `dlf-sample` command."""

try:
    from dlf.tools.sample import cli
except ImportError:  # not installed: use the source tree
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from dlf.tools.sample import cli

if __name__ == "__main__":
    cli()
