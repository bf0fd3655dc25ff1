"""TensorBoard's Custom Scalars page for dlf runs: a layout that puts what is read together on one chart.

`scalars_layout(family, tags)` builds it from a run's scalar tags, in tag groups:
- one category per model family ("mlp: train and val", "sequence: ...", "cnn: ...", "gan: ..."), with one chart per
  metric holding its train/ and val/ series (`^(train|val)/loss$`), and pairs drawn together (the GAN's D and G losses);
- one category per section of tags apart from the curves (`SECTIONS`: `diag/` is "diagnostics"), one chart a tag.
A new group of tags gets its own category by a line in SECTIONS; the health callback's tags get theirs from
dlf.callbacks.health.layout (a chart per quantity, a line per layer), added when the run measures health.

Every run registers its layout (`ScalarsLayout`): when training starts, from the metrics its system declares, and again
at its end with the tags it logged (a diagnostics callback's). TensorBoard merges the layouts of all runs of a log dir
(a category of the same title once, its charts without duplicates), and a chart's tags are regular expressions matched
in every run, so one chart shows every run's train and val curves of that metric.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import lightning as L

SECTIONS = {"diag": "diagnostics"}  # tag prefix -> its own category
PAIRS = {"D and G losses": ("d_loss", "g_loss")}  # metrics drawn on one chart
STAGES = ("train", "val")


def scalars_layout(family: str, tags: Iterable[str], sections: dict[str, str] = SECTIONS,
                   pairs: dict[str, tuple[str, ...]] = PAIRS) -> dict[str, dict[str, list]]:
    """{category: {chart title: ["Multiline", [tag regexes]]}}, as torch's `SummaryWriter.add_custom_scalars` takes it."""
    tags = sorted(set(tags))
    stages: dict[str, list[str]] = {}
    for tag in tags:
        stage, _, name = tag.partition("/")
        if stage in STAGES and name:
            stages.setdefault(name, []).append(stage)
    charts: dict[str, list] = {}
    paired: set[str] = set()
    for title, names in pairs.items():
        present = [n for n in names if n in stages]
        if len(present) > 1:
            used = sorted({s for n in present for s in stages[n]})
            charts[title] = ["Multiline", [f"^({'|'.join(used)})/({'|'.join(map(re.escape, present))})$"]]
            paired.update(present)
    for name, used in stages.items():
        if name not in paired:
            charts[name] = ["Multiline", [f"^({'|'.join(used)})/{re.escape(name)}$"]]
    layout = {f"{family}: train and val": charts} if charts else {}
    for prefix, title in sections.items():
        own = [t for t in tags if t.startswith(prefix + "/")]
        if own:
            layout[title] = {t: ["Multiline", [f"^{re.escape(t)}$"]] for t in own}
    return layout


def family(pl_module: L.LightningModule) -> str:
    """mlp, sequence, cnn, gan: the system's class name less `System`."""
    name = type(pl_module).__name__
    return (name[: -len("System")] if name.endswith("System") and name != "System" else name).lower()


class ScalarsLayout(L.Callback):
    """Register the run's custom-scalars layout with every TensorBoard logger: when training starts (the metrics the
    system declares) and at the end (every scalar tag it logged)."""

    def __init__(self) -> None:
        self.written: dict | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._write(trainer, pl_module)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or not trainer.is_global_zero:
            return
        declared = pl_module.metric_names() if hasattr(pl_module, "metric_names") else None
        tags = set(declared or ()).union(*(getattr(lg, "scalar_tags", ()) for lg in loggers))
        layout = scalars_layout(family(pl_module), tags)
        layout.update(_health_section(trainer, family(pl_module)))
        if not layout or layout == self.written:
            return
        self.written = layout
        for lg in loggers:  # TensorBoard reads the last layout a run wrote
            lg.experiment.add_custom_scalars(layout)


def _health_section(trainer: L.Trainer, fam: str) -> dict:
    """The health callback's charts (dlf.callbacks.health.layout: one chart per quantity, one line per layer; the
    GAN's G and D apart) when the run measures health."""
    from dlf.callbacks.health import Health, layout

    on = any(isinstance(cb, Health) and cb.enabled for cb in trainer.callbacks)
    return layout(("G", "D") if fam == "gan" else ()) if on else {}
