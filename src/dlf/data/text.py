"""Character-level language modelling: predict character t+1 from characters 1..t.

`data.path=my.txt` reads a UTF-8 text file. Without a path, dlf writes its own small corpus from a tiny grammar
(generate_corpus below; no third-party text): simple English sentences about places, animals, people and a few fixed
facts such as "the sun rises in the east", so a model has something to learn and a prompt to complete.

The text is split 80/10/10 (train/val/test, in reading order) and cut into windows of seq_len + 1 characters:
x = c_1..c_T, y = c_2..c_{T+1}. facts.vocab lists the characters; facts.extra["unigram_ppl"] is the perplexity on the
validation text of the unigram model (character frequencies of the training text): the baseline to beat.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import torch

from dlf.data.base import DataFacts, InMemoryDataModule
from dlf.errors import require

FACTS = ["the sun rises in the east", "the sun sets in the west", "the moon shines at night",
         "snow falls in the winter", "rivers run down to the sea", "birds fly south in the autumn",
         "the stars come out after dark", "bread is baked in an oven", "ice melts in the spring"]
NAMES = ["Ana", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kira", "Leo"]
PLACES = [("Spain", "Spanish"), ("France", "French"), ("Japan", "Japanese"), ("Brazil", "Portuguese"),
          ("Italy", "Italian"), ("Germany", "German"), ("China", "Chinese"), ("Greece", "Greek")]
ANIMALS = ["cat", "dog", "fox", "horse", "owl", "rabbit", "goat", "duck"]
ADJS = ["small", "old", "quiet", "happy", "brown", "lazy", "young", "clever"]
SPOTS = ["garden", "forest", "river", "field", "barn", "village", "hill", "kitchen"]
VERBS = ["sleeps", "runs", "waits", "plays", "hides", "sings", "eats", "walks"]
TIMES = ["in the morning", "at noon", "in the evening", "at night", "every day", "after the rain"]
HOBBIES = ["reading books", "playing chess", "cooking soup", "painting birds", "riding a bike", "growing tomatoes"]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _sentence(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        s = rng.choice(FACTS)
    elif kind == 1:
        s = f"the {rng.choice(ADJS)} {rng.choice(ANIMALS)} {rng.choice(VERBS)} in the {rng.choice(SPOTS)} " \
            f"{rng.choice(TIMES)}"
    elif kind == 2:
        country, language = rng.choice(PLACES)
        s = f"{rng.choice(NAMES)} lived in {country} for {rng.randint(2, 20)} years and speaks {language}"
    elif kind == 3:
        s = f"{rng.choice(NAMES)} likes {rng.choice(HOBBIES)} {rng.choice(TIMES)}"
    else:
        s = f"{_a(rng.choice(ANIMALS))} and {_a(rng.choice(ANIMALS))} {rng.choice(VERBS)[:-1]} near the {rng.choice(SPOTS)}"
    return s[0].upper() + s[1:] + "."


def generate_corpus(n_chars: int = 200_000, seed: int = 0) -> str:
    """Paragraphs of 3 to 6 grammar-made sentences until the text has at least n_chars characters."""
    rng = random.Random(seed)
    paragraphs, size = [], 0
    while size < n_chars:
        p = " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))
        paragraphs.append(p)
        size += len(p) + 1
    return "\n".join(paragraphs) + "\n"


def read_text(path: str | Path) -> str:
    p = Path(path)
    require(p.is_file(), f"data.path={str(path)!r} is not a file: give a UTF-8 text file, or drop data.path to use the "
                         "built-in corpus")
    raw = p.read_bytes()
    require(len(raw.strip()) > 0, f"data.path={str(path)!r} is empty: give a text file with some content")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    require(text is not None and "\x00" not in text,
            f"data.path={str(path)!r} looks binary (not UTF-8 text): give a plain text file")
    return text


def windows(ids: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows: x [n, T] and the next characters y [n, T]."""
    n = (len(ids) - 1) // seq_len
    x = ids[: n * seq_len].view(n, seq_len)
    y = ids[1: n * seq_len + 1].view(n, seq_len)
    return x, y


class TextDataModule(InMemoryDataModule):
    def __init__(self, path: str | None = None, seq_len: int = 64, corpus_chars: int = 200_000, corpus_seed: int = 0,
                 batch_size: int = 64, seed: int = 0):
        super().__init__(batch_size=batch_size, seed=seed)
        require(isinstance(seq_len, int) and seq_len >= 2, f"data.seq_len={seq_len!r} must be an integer >= 2, e.g. 64")
        require(isinstance(corpus_chars, int) and corpus_chars >= 1000,
                f"data.corpus_chars={corpus_chars!r} must be an integer >= 1000")
        self.path, self.seq_len, self.corpus_chars, self.corpus_seed = path, seq_len, corpus_chars, corpus_seed

    def build(self) -> None:
        text = read_text(self.path) if self.path else generate_corpus(self.corpus_chars, self.corpus_seed)
        T = self.seq_len
        need = 10 * (T + 1)  # the smallest split (10%) must hold one window of T + 1 characters
        source = f"data.path={str(self.path)!r}" if self.path else "the generated corpus"
        require(len(text) >= need, f"{source} has only {len(text)} characters: with "
                                   f"data.seq_len={T} it needs at least {need}; use a longer text or a smaller data.seq_len")
        vocab = sorted(set(text))
        index = {c: i for i, c in enumerate(vocab)}
        ids = torch.tensor([index[c] for c in text], dtype=torch.int64)
        a, b = int(len(ids) * 0.8), int(len(ids) * 0.9)
        self.train, self.val, self.test = windows(ids[:a], T), windows(ids[a:b], T), windows(ids[b:], T)
        counts = Counter(text[:a])
        total = a + len(vocab)  # add-one smoothing: a character unseen in training still has a probability
        val_text = text[a:b]
        unigram_nll = -sum(math.log((counts[c] + 1) / total) for c in val_text) / len(val_text)
        self.facts = DataFacts(name="text", kind="tokens", target="next_token", input_shape=(T,), seq_len=T,
                               num_classes=len(vocab), vocab=vocab,
                               extra={"unigram_ppl": math.exp(unigram_nll), "source": str(self.path or "grammar")})
