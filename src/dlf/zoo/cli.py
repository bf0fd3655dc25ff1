"""`dlf-zoo`: list | show NAME | eval NAME|--all | export NAME DIR | train NAME. Bad input is one line on stderr and
exit status 2 (a failed eval: 1)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dlf.errors import DlfError
from dlf.zoo.entries import ENTRIES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlf-zoo", description="dlf's model zoo: trained reference models by name")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="a table: name, task, metric, params, size")
    sub.add_parser("show", help="an entry's card").add_argument("name")
    ev = sub.add_parser("eval", help="re-evaluate shipped weights on the test split against the card")
    ev.add_argument("name", nargs="?")
    ev.add_argument("--all", action="store_true")
    ev.add_argument("--data-dir", default="data", help="where generated/downloaded datasets are cached (default data/)")
    ex = sub.add_parser("export", help="a Hugging Face-style folder: config.json, model.safetensors, README.md")
    ex.add_argument("name")
    ex.add_argument("dir")
    tr = sub.add_parser("train", help="run the card's command, ship the weights, write the card")
    tr.add_argument("name")
    tr.add_argument("--work-dir", default="logs/zoo", help="where the run dir goes (default logs/zoo/NAME)")
    tr.add_argument("--data-dir", default=None)
    tr.add_argument("--reuse", action="store_true", help="ship a finished run of the same command in the work dir")
    return p


def known(name: str) -> str:
    if name not in ENTRIES:
        raise DlfError(f"no model {name!r}: pick one of {', '.join(ENTRIES)} (dlf-zoo list)")
    return name


def export(name: str, folder: Path) -> None:
    """config.json (the hyper-parameters and the card), model.safetensors (the state_dict), README.md (the card)."""
    from safetensors.torch import save_file

    from dlf import zoo
    from dlf.systems.saved import peek
    from dlf.zoo.render import card_markdown

    ckpt = peek(zoo.weights_path(name))
    folder.mkdir(parents=True, exist_ok=True)
    card = zoo.card(name)
    (folder / "config.json").write_text(json.dumps({"dlf_zoo": name, "hyper_parameters": ckpt["hyper_parameters"],
                                                    "card": card}, indent=1) + "\n")
    save_file({k: v.contiguous() for k, v in ckpt["state_dict"].items()}, str(folder / "model.safetensors"))
    (folder / "README.md").write_text(card_markdown(card, "#"))


def command(args) -> int:
    from dlf import zoo
    from dlf.zoo import render

    if args.cmd == "list":
        print(render.table([zoo.card(n) for n in ENTRIES]))
    elif args.cmd == "show":
        print(render.card_markdown(zoo.card(known(args.name))))
    elif args.cmd == "eval":
        if bool(args.all) == bool(args.name):
            raise DlfError("eval: give one model's name or --all (e.g. dlf-zoo eval mlp_xor)")
        from dlf.zoo.evaluate import evaluate_all

        return evaluate_all(list(ENTRIES) if args.all else [known(args.name)], args.data_dir)
    elif args.cmd == "export":
        export(known(args.name), Path(args.dir))
        print(f"{args.name} exported to {args.dir} (config.json, model.safetensors, README.md): dlf.load({args.dir!r})")
    elif args.cmd == "train":
        from dlf.zoo.make import train

        card = train(known(args.name), Path(args.work_dir), args.data_dir, args.reuse)
        print(f"{args.name}: {render.metric_text(card)}, weights and card written (dlf-zoo show {args.name})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return command(args)
    except DlfError as e:
        print(f"dlf-zoo: error: {e}", file=sys.stderr)
        return 2


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
