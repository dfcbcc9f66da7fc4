"""TensorBoard event files beside ``train_log.jsonl``, for people who watch curves there.

The JSON-lines log stays the source of truth: :class:`TensorBoardLog` receives each record the
loop writes to it and adds that record's numeric values as scalars, tagged ``<kind>/<key>``
(``step/loss``, ``epoch/knn_acc``, ...) at the record's global ``step``. TensorBoard is an
optional extra (``pip install 'rascal[tensorboard]'``).
"""

from __future__ import annotations

import math
import os
from numbers import Real

from rascal_train.errors import RascalError

LOG_DIR = "tensorboard"


class TensorBoardLog:
    """Write ``train_log.jsonl`` records as TensorBoard scalars under ``log_dir``.

    Parameters
    ----------
    log_dir : path
        Usually ``<run_dir>/tensorboard``.

    Raises
    ------
    RascalError
        When the ``tensorboard`` package is not installed.
    """

    def __init__(self, log_dir: str | os.PathLike):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RascalError("--tensorboard needs the tensorboard package; install it with "
                              "pip install 'rascal[tensorboard]' (or pip install tensorboard), or "
                              "drop --tensorboard."
                              ) from None
        self.writer = SummaryWriter(str(log_dir))

    def add(self, record: dict) -> None:
        """Add the finite numbers of one log record (not ``epoch`` / ``step``, which place it)."""
        tag = record.get("kind", "log")
        for key, value in record.items():
            if (key in ("kind", "epoch", "step") or isinstance(value, bool)
                    or not isinstance(value, Real)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(f"{tag}/{key}", value, global_step=int(record["step"]))
        if tag == "epoch":
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
