"""TensorBoard event files read with TensorBoard's own reader (EventAccumulator), a damaged file reported, not hidden.

TensorBoard's loader stops at the first bad record (truncated, failed CRC) and says so only in a DEBUG log line, so a
damaged file would look like a run that stopped early. `read_scalars` catches that line and returns it.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path


class _TruncatedRecords(logging.Handler):
    """TensorBoard's event-file loader stops at a damaged record and says so only at DEBUG level ('Truncated record
    in <file> (<reason>)'); catch that line so the damage is reported instead of silently shortening a curve."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("Truncated record") and len(record.args or ()) == 2:
            path, err = record.args
            reason = str(err).rsplit("' ", 1)[-1] if "' " in str(err) else str(err)
            self.found.append(f"{Path(str(path)).name}: {reason}")


@contextlib.contextmanager
def _catch_truncation():
    tb_log = logging.getLogger("tensorboard")
    handler, saved = _TruncatedRecords(), (tb_log.level, tb_log.propagate)
    tb_log.addHandler(handler)
    tb_log.setLevel(logging.DEBUG)
    tb_log.propagate = False  # its other DEBUG lines stay out of the console and train.log
    try:
        yield handler.found
    finally:
        tb_log.removeHandler(handler)
        tb_log.setLevel(saved[0])
        tb_log.propagate = saved[1]


def read_scalars(run_dir: Path) -> tuple[dict[str, tuple[list[int], list[float]]], str | None]:
    """Every scalar series of a run's event files (TensorBoard's EventAccumulator), and a line if a file is damaged."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    files = sorted(run_dir.rglob("events.out.tfevents.*"))
    curves: dict[str, tuple[list[int], list[float]]] = {}
    damage = []
    guidance = {ea.SCALARS: 0, ea.IMAGES: 1, ea.HISTOGRAMS: 1, ea.TENSORS: 1, ea.AUDIO: 1, ea.COMPRESSED_HISTOGRAMS: 1}
    for events_dir in sorted({f.parent for f in files}):
        damage += [f"{f.name}: empty file" for f in files if f.parent == events_dir and f.stat().st_size == 0]
        acc = ea.EventAccumulator(str(events_dir), size_guidance=guidance)
        with _catch_truncation() as found:
            acc.Reload()
        damage += found
        for tag in acc.Tags()["scalars"]:
            points = acc.Scalars(tag)
            curves[tag] = ([p.step for p in points], [p.value for p in points])
    return curves, ("; ".join(damage) or None)
