"""Runs that differ only in their seed, aggregated: a setting's mean ± std (and n) for dlf-compare and the sweep summary.

A setting is a sweep dir (or a dir of single runs) and a run's command-line overrides less `seed=`; runs of one setting
differ in nothing but their seed (or are repeats of one command). A run whose dir has no .hydra/ is a setting of its
own. The std is the sample standard deviation (n - 1); a value missing in a run (failed, diverged) is left out, and
the cell says how many runs it is over ("0.12 ± 0.01 (2 of 3)").
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

SEED_KEYS = ("seed",)


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


@dataclass
class Setting:
    key: tuple
    label: str
    runs: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.runs)

    def seeds(self) -> str:
        return ",".join(str(r.seed) for r in self.runs if r.seed is not None)

    def stat(self, get) -> tuple[float | None, float | None, int]:
        """(mean, std, k): over the k runs with a finite value of get(run)."""
        values = [v for v in (get(r) for r in self.runs) if isinstance(v, (int, float)) and math.isfinite(v)]
        if not values:
            return None, None, 0
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0), len(values)

    def cell(self, get, digits: int = 4) -> str:
        mean, std, k = self.stat(get)
        if mean is None:
            return ""
        return f"{mean:.{digits}g} ± {std:.2g}" + (f" ({k} of {self.n})" if k < self.n else "")


def setting_key(run) -> tuple:
    if not run.hydra:
        return (str(run.dir),)
    return (str(Path(run.dir).parent), tuple(sorted(o for o in run.overrides if key_of(o) not in SEED_KEYS)))


def group(runs: list, common: list[str] = ()) -> list[Setting]:
    """The settings of `runs`, in the order of their first run; a label of the overrides that are not `seed=` nor
    shared by every run."""
    settings: dict[tuple, Setting] = {}
    for r in runs:
        key = setting_key(r)
        if key not in settings:
            label = ",".join(o for o in key[1] if o not in common) if len(key) > 1 else r.label
            settings[key] = Setting(key, label or "(defaults)")
        settings[key].runs.append(r)
    return list(settings.values())


def mean_curve(curves: list[tuple[list[int], list[float]]]):
    """(steps, mean, std) over the steps every curve has: the runs of a setting log at the same steps."""
    common = set(curves[0][0]).intersection(*(set(s) for s, _ in curves[1:]))
    steps = sorted(common)
    at = [dict(zip(s, v)) for s, v in curves]
    mean = [statistics.fmean(c[s] for c in at) for s in steps]
    std = [statistics.stdev([c[s] for c in at]) if len(at) > 1 else 0.0 for s in steps]
    return steps, mean, std
