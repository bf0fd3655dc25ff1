"""A card as text: the markdown of `dlf-zoo show`, an export's README.md, docs/zoo.md and hubconf.py's docstrings."""

from __future__ import annotations


def size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def metric_text(card: dict) -> str:
    if not card.get("shipped"):
        return "not trained yet"
    return f"{card['metric']} = {card['test'][card['metric']]:.4g}"


def table(cards: list[dict]) -> str:
    rows = ["| name | task | metric (test) | params | size |", "|---|---|---|---|---|"]
    for c in cards:
        params = f"{c['num_params']:,}" if c.get("shipped") else "—"
        rows.append(f"| {c['name']} | {c['task']} | {metric_text(c)} | {params} | "
                    f"{size(c['file_size']) if c.get('shipped') else '—'} |")
    return "\n".join(rows)


def card_markdown(card: dict, level: str = "##") -> str:
    """The card as markdown: a heading, then one line per fact."""
    lines = [f"{level} {card['name']}", "", card["task"] + ".", ""]
    facts = [("data", card["data"]), ("command", f"`{card['command']}`")]
    if not card.get("shipped"):
        facts.append(("weights", f"not shipped yet: `dlf-zoo train {card['name']}` trains them"))
    else:
        test = ", ".join(f"{k} = {v:.6g}" for k, v in card["test"].items())
        facts += [("seed", str(card["seed"])), ("test metrics (this checkpoint)", test)]
        row = card.get("results_md")
        if row:
            facts.append(("docs/results.md", f"{row['mean_std']} over {row['seeds']} seeds "
                                              f"({row['experiment']}); published: {row['published']}"))
        t = card["train"]
        facts += [("num_params", f"{card['num_params']:,}"), ("FLOPs (one example)", f"{card['flops_one_example']:,}"),
                  ("file", f"{size(card['file_size'])} ({card['file_size']:,} bytes), sha256 {card['sha256']}"),
                  ("trained", f"{t['wall_s']} s wall, {t['cpu_s']} s CPU, {t['steps']} steps, {t['threads']} thread "
                              f"({t['machine']})"),
                  ("commit", f"{card['commit']}, {card['date']}"),
                  ("versions", ", ".join(f"{k} {v}" for k, v in card["versions"].items()))]
    facts += [("preprocessing", card["preprocessing"]),
              ("licence", f"weights: {card['licence']['weights']}; data: {card['licence']['data']}")]
    return "\n".join(lines + [f"- **{k}**: {v}" for k, v in facts]) + "\n"
