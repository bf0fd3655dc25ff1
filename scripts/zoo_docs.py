"""Write docs/zoo.md from dlf's zoo registry (one table, then one card per model): `python scripts/zoo_docs.py`
(`--check`: only say whether it is stale). tests/test_zoo.py fails when docs/zoo.md differs from what this writes.
Never edit docs/zoo.md by hand."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dlf import zoo  # noqa: E402
from dlf.zoo.render import card_markdown, table  # noqa: E402

PAGE = ROOT / "docs" / "zoo.md"


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
    return head + table(cards) + "\n\n" + "\n".join(card_markdown(c) for c in cards)


def main(argv: list[str]) -> int:
    """`--check`: exit 1, saying so, when docs/zoo.md is not what the registry writes (the page is never changed)."""
    if "--check" in argv:
        if PAGE.is_file() and PAGE.read_text() == page():
            print(f"{PAGE} is up to date")
            return 0
        print(f"{PAGE} is stale: run python scripts/zoo_docs.py", file=sys.stderr)
        return 1
    PAGE.write_text(page())
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
