"""How often a checkpoint is written (trainer.checkpoint_every_seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pytest

from rnnlab import checkpoints


def fitted_checkpoint(folder: Path, every_seconds: float, epochs: int) -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    checkpoint = checkpoints.EpochCheckpoint(folder, "run-id", [], every_seconds=every_seconds)
    checkpoint.set_model(model)
    for epoch in range(epochs):
        checkpoint.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})


def test_with_0_seconds_every_epoch_is_checkpointed_with_the_whole_history(tmp_path: Path):
    fitted_checkpoint(tmp_path, 0.0, 3)
    state = json.loads((tmp_path / "latest.json").read_text())
    assert state["epoch"] == 3 and state["history"]["loss"] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [p.name for p in tmp_path.glob("epoch-*")] == ["epoch-3"]  # the older ones are removed


def test_within_the_interval_no_epoch_is_saved(tmp_path: Path):
    fitted_checkpoint(tmp_path, 3600.0, 5)
    assert not (tmp_path / "latest.json").exists() and not list(tmp_path.glob("epoch-*"))
