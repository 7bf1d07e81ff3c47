"""One line per epoch while a model trains:

    epoch 2/3  loss 0.512  accuracy 0.750  val_loss 0.601  val_accuracy 0.700  (1.2 s)

A Keras callback (the NumPy models call `on_epoch_end` on the callbacks they are given, as Keras
does), logged through `logging` (rnnlab.models.progress, INFO): to stderr under a DVC stage, where Hydra
runs the app to its console handler; stdout's last line stays the final metrics' JSON, printed
after training. Keras' own progress output stays off (trainer.verbose: 0) so nothing is said twice.
Long runs print at most about MAX_LINES lines: every k-th epoch, and always the first and last.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import keras

log = logging.getLogger(__name__)

MAX_LINES = 100


class EpochProgress(keras.callbacks.Callback):
    def __init__(self, epochs: int, logger: logging.Logger = log) -> None:
        super().__init__()
        self.epochs = int(epochs)
        self.every = max(1, math.ceil(self.epochs / MAX_LINES))
        self._log = logger
        self._started = time.monotonic()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        seconds, self._started = now - self._started, now
        number = epoch + 1
        if number % self.every and number not in (1, self.epochs):
            return
        self._log.info("%s", format_epoch(number, self.epochs, logs or {}, seconds))


def format_epoch(number: int, epochs: int, logs: dict[str, Any], seconds: float) -> str:
    values = "  ".join(f"{key} {_number(value)}" for key, value in logs.items() if key != "learning_rate")
    width = len(str(epochs))
    return f"epoch {number:>{width}}/{epochs}  {values}  ({seconds:.1f} s)".replace("    (", "  (")


def _number(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
