"""Write docs/zoo.md from dlf's zoo registry (one table, then one card per model, each shipped model's card with its
sample figure, docs/figures/zoo_NAME.png, drawn from its shipped weights by dlf.zoo.figures): `python
scripts/zoo_docs.py [--data-dir DIR]` (DIR: where MNIST-1D is generated and cached, default data/). `--check` only says
whether the page is stale or a shipped model's figure is missing or drawn from other weights (each PNG records the
sha256 of its weights). tests/test_zoo.py fails when either is. Never edit docs/zoo.md or the figures by hand."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dlf import zoo  # noqa: E402
from dlf.zoo.figures import drawn_from, png_name  # noqa: E402
from dlf.zoo.render import card_markdown, table  # noqa: E402

PAGE = ROOT / "docs" / "zoo.md"
FIGURES = ROOT / "docs" / "figures"


def page() -> str:
    cards = [zoo.card(n) for n in zoo.list_models()]
    shipped = [c["name"] for c in cards if c.get("shipped")]
    head = ("# The model zoo\n\nWritten by `python scripts/zoo_docs.py` from dlf's registry (`dlf.zoo`) and the cards "
            "`dlf-zoo train NAME` writes; do not edit. Each model loads by name, offline, with its preprocessing:\n\n"
            "```python\nimport dlf\nm = dlf.zoo.get_model(\"mlp_xor\")\nm.predict([[0, 1], [1, 1]])\n```\n\n"
            f"Shipped weights ({len(shipped)} of {len(cards)}): {', '.join(shipped) or 'none'}. The others are "
            "registered with their command and train with `dlf-zoo train NAME`; `get_model(NAME, pretrained=False)` "
            "builds them with fresh weights. `dlf-zoo eval --all` re-evaluates every shipped model against its card; "
            "`torch.hub.load(<clone>, NAME, source=\"local\")` works through the clone's hubconf.py.\n\n")
    return head + table(cards) + "\n\n" + "\n".join(card_markdown(c) + figure_line(c) for c in cards)


def figure_line(card: dict) -> str:
    """The card's sample figure (a shipped model), or where it will come from."""
    if not card.get("shipped"):
        return "- **sample figure**: drawn from the weights once they ship (`python scripts/zoo_docs.py`)\n"
    return f"\n![{card['name']}: its sample figure, drawn from the shipped weights](figures/{png_name(card['name'])})\n"


def stale_figures() -> list[str]:
    """What is wrong with the figures: a shipped model's missing or drawn from weights other than its card's."""
    bad = []
    for name in zoo.list_models():
        path = FIGURES / png_name(name)
        if zoo.shipped(name) and drawn_from(path) != zoo.card(name)["sha256"]:
            bad.append(f"{path.relative_to(ROOT)} is {'missing' if not path.is_file() else 'drawn from other weights'}")
    return bad


def main(argv: list[str]) -> int:
    """`--check`: exit 1, saying so, when docs/zoo.md is not what the registry writes (the page is never changed)."""
    import argparse

    ap = argparse.ArgumentParser(description="write docs/zoo.md and the zoo's sample figures from the registry")
    ap.add_argument("--check", action="store_true", help="only say whether the page or a figure is stale")
    ap.add_argument("--data-dir", default=str(ROOT / "data"), help="where MNIST-1D is generated and cached")
    args = ap.parse_args(argv)
    if args.check:
        problems = ([] if PAGE.is_file() and PAGE.read_text() == page() else [f"{PAGE} is stale"]) + stale_figures()
        if not problems:
            print(f"{PAGE} and its figures are up to date")
            return 0
        print("; ".join(problems) + ": run python scripts/zoo_docs.py", file=sys.stderr)
        return 1
    from dlf.errors import DlfError
    from dlf.zoo.figures import write

    for name in filter(zoo.shipped, zoo.list_models()):
        try:
            print(f"wrote {write(name, FIGURES, args.data_dir).relative_to(ROOT)}", flush=True)
        except DlfError as e:  # its data absent (Fashion-MNIST without Debian's package): one line, nothing written
            print(f"zoo_docs: error: {name}'s figure: {e}", file=sys.stderr)
            return 2
    PAGE.write_text(page())
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
