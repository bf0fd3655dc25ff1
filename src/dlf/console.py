"""What a run tells its user: `say(text)` prints it and writes it to the run's train.log.

Hydra's job log (<run dir>/train.log, `hydra/default.yaml`) is the `file` handler of the `dlf` logger and of Lightning's
loggers: Lightning's INFO lines (the accelerator, a restored checkpoint, why fit stopped) go to the file only, dlf's own
lines to the console (print) and the file (logging). Outside a Hydra run (tests, notebooks) the `dlf` logger has no
handler and its INFO lines go nowhere: only the print shows.
"""

from __future__ import annotations

import logging

log = logging.getLogger("dlf")


def say(text: str) -> None:
    """Print `text` and log it, on global rank 0 only (under DDP every rank runs the same code)."""
    from dlf.distributed import is_rank_zero

    if is_rank_zero():
        print(text, flush=True)
        log.info(text)
