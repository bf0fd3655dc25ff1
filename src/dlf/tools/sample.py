"""Generate text from a trained character-level language model (`dlf-sample`, or `python scripts/sample.py`).

    dlf-sample logs/lstm_text/runs/<run> --prompt "The sun rises in the" --temperature 0.8 --length 300 --top-k 5

Reads the run's saved config (<run dir>/.hydra/config.yaml) and its checkpoint (checkpoints/best.ckpt, else last.ckpt;
loaded with weights_only=True), prints the k most likely next characters after the prompt, then a sample: each next
character drawn from softmax(V h_t / temperature) (temperature 0: always the most likely one).

Bad input (a missing run, a run of another task, an empty prompt, a negative temperature) is refused before torch is
imported: in about a second, not the ten that `import torch` takes on a small machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlf.errors import DlfError, require


def check_run(path: str | Path) -> None:
    """Refuse, from the run's saved config and without torch, a run that is surely not a language model: one that
    trained one of dlf's own data modules other than text. (load_model checks the data's facts in any case.)"""
    from dlf.run.checkpoint import locate_run, saved_config

    run_dir, _ = locate_run(path)
    target = str((saved_config(run_dir).get("data") or {}).get("_target_", ""))
    name = target.rsplit(".", 1)[-1]
    require(not target.startswith("dlf.data.") or target.startswith("dlf.data.text."),
            f"{path} is a model of data {name}, not a language model: sample from a run trained with data=text")


def load_model(path: str | Path):
    """The trained SequenceSystem (eval mode, CPU) and its data facts (dlf.run.checkpoint.load_system)."""
    from dlf.run.checkpoint import load_system

    model = load_system(path)  # a run dir (best.ckpt, else last.ckpt) or a checkpoint file in one
    facts = model.facts
    require(facts.target == "next_token", f"{path} is a model of data={facts.name}, not a language model: "
                                          "sample from a run trained with data=text")
    return model, facts


def encode(text: str, vocab: list[str]):
    """Character ids [1, len(text)] (DataFacts.encode, the one place a prompt becomes the model's input)."""
    from dlf.data.base import DataFacts

    return DataFacts(name="text", kind="tokens", target="next_token", vocab=list(vocab)).encode(text)[0]


def next_char_probs(model, prompt: str, vocab: list[str]):
    """P(next character | prompt) [V] and the state after the prompt (SequenceSystem.next_char_probs)."""
    require(list(vocab) == list(model.facts.vocab), "the vocabulary given is not the model's")
    return model.next_char_probs(prompt)


def generate(model, prompt: str, vocab: list[str], length: int = 200, temperature: float = 0.8,
             seed: int = 0) -> str:
    """The prompt and `length` sampled characters (SequenceSystem.sample)."""
    require(list(vocab) == list(model.facts.vocab), "the vocabulary given is not the model's")
    return model.sample(prompt, length, temperature, seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dlf-sample", description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a run dir (logs/<task>/runs/<time>) or a checkpoint file")
    ap.add_argument("--prompt", default="The sun rises in the")
    ap.add_argument("--length", type=int, default=300, help="characters to generate")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=5, help="show the k most likely next characters after the prompt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        require(args.prompt != "", "--prompt must not be empty")
        require(args.temperature >= 0, f"--temperature={args.temperature} must be >= 0 (0: always the most likely "
                                       "character)")
        require(args.length >= 0, f"--length={args.length} must be >= 0")
        require(args.top_k >= 1, f"--top-k={args.top_k} must be >= 1")
        check_run(args.run)  # all of the above without torch
        model, facts = load_model(args.run)
        probs, _ = next_char_probs(model, args.prompt, facts.vocab)
        import torch

        top = torch.topk(probs, min(args.top_k, len(probs)))
        print(f"Top {len(top.indices)} next characters after {args.prompt!r}:")
        for p, i in zip(top.values.tolist(), top.indices.tolist()):
            print(f"  {facts.vocab[i]!r:6} {p:.3f}")
        print(f"\nSample (temperature {args.temperature}):")
        print(generate(model, args.prompt, facts.vocab, args.length, args.temperature, args.seed))
    except DlfError as e:
        print(f"dlf-sample: error: {e}", file=sys.stderr)
        return 2
    return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
