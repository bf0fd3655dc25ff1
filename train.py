"""`python train.py model=<name> ...` from a clone. Same as the `dlf-train` command."""

try:
    from dlf.run.cli import cli
except ImportError:  # not installed: use the source tree
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from dlf.run.cli import cli

if __name__ == "__main__":
    cli()
