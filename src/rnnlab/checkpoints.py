"""Resume: a run killed in the middle of training picks up at its next epoch when the same
command runs again (trainer.resume: true), in the same MLflow run, and ends where an
uninterrupted run would have ended.

At the end of an epoch, at most every trainer.checkpoint_every_seconds, `EpochCheckpoint` writes the whole Keras model (weights and optimizer
state), the random state of its dropout layers, the state of early stopping and of
ReduceLROnPlateau, the history so far and the MLflow run id to
outputs/checkpoints/<digest of the resolved config>/ (outside every DVC output); a new
epoch's folder is complete before `latest.json` points at it, so a kill at any moment
leaves the previous epoch readable. The folder is removed when the run finishes. The data's
order per epoch comes from the seed and the epoch alone (ArrayBatches, OneHotWindows,
SequenceChunks), so the resumed epochs see the batches the lost ones would have.

The NumPy models train in a few seconds and are not checkpointed.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from omegaconf import OmegaConf

from rnnlab import io, paths

log = logging.getLogger(__name__)

# What early stopping and ReduceLROnPlateau count between epochs (they reset it when fit begins).
CALLBACK_STATE = ("wait", "best", "best_epoch", "stopped_epoch", "cooldown_counter")


def folder_for(cfg: Any) -> Path:
    """One folder per resolved config: the same command finds its own checkpoint, another
    config never does."""
    resolved = OmegaConf.to_yaml(cfg, resolve=True, sort_keys=True)
    return paths.ROOT / "outputs" / "checkpoints" / f"{cfg.experiment_name}-{hashlib.sha256(resolved.encode()).hexdigest()[:16]}"


@dataclass
class Resumed:
    """A checkpoint to go on from: the model after `epoch` epochs and what came with it."""

    epoch: int
    run_id: str
    history: dict[str, list[float]]
    model_file: Path
    state: dict[str, Any]
    folder: Path


def latest(folder: Path) -> Resumed | None:
    """The newest complete checkpoint in `folder`, or None."""
    pointer = folder / "latest.json"
    if not pointer.is_file():
        return None
    try:
        state = io.read_json(pointer)
        epoch_dir = folder / state["dir"]
        if not (epoch_dir / "model.keras").is_file():
            raise FileNotFoundError(epoch_dir / "model.keras")
    except (OSError, ValueError, KeyError) as exc:
        log.warning("checkpoint %s is unreadable (%s); training starts from epoch 1", folder, exc)
        return None
    return Resumed(int(state["epoch"]), str(state["run_id"]), state["history"], epoch_dir / "model.keras", state, folder)


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def seed_states(model: keras.Model) -> list[np.ndarray]:
    # Dropout's random state: a .keras file does not keep it (a loaded model draws new seeds).
    return [np.asarray(v) for v in model.variables if "seed_generator_state" in v.path]


def restore(model: keras.Model, resumed: Resumed) -> None:
    """Give the loaded model the dropout random state it had at the checkpoint."""
    variables = [v for v in model.variables if "seed_generator_state" in v.path]
    saved = [np.asarray(s, dtype=np.asarray(v).dtype) for v, s in zip(variables, resumed.state["seed_states"])]
    if len(saved) != len(variables):
        raise ValueError(f"checkpoint {resumed.folder} has {len(saved)} random states, the model {len(variables)}")
    for variable, value in zip(variables, saved):
        variable.assign(value)


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes a checkpoint at the end of an epoch once `every_seconds` have passed since the
    last one (0: after every epoch); given a Resumed, first puts back the state of the other
    callbacks (after their own on_train_begin has reset it: put this one last).

    Not after every epoch by default: saving the model costs 0.2-0.4 s on this project's CPU
    machine, as much as a whole epoch of the quick profile; a kill loses at most every_seconds
    of training instead (trainer.checkpoint_every_seconds)."""

    def __init__(self, folder: Path, run_id: str, callbacks: list[keras.callbacks.Callback],
                 resumed: Resumed | None = None, every_seconds: float = 0.0) -> None:
        super().__init__()
        self.folder, self.run_id, self.callbacks, self.resumed = folder, run_id, callbacks, resumed
        self.every_seconds, self._last = float(every_seconds), time.monotonic()
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (resumed.history if resumed else {}).items()}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.resumed is None:
            return
        for callback, saved in zip(self.callbacks, self.resumed.state.get("callbacks", [])):
            for key, value in saved.items():
                setattr(callback, key, value)
            best = self.resumed.folder / self.resumed.state["dir"] / f"best_weights_{self.callbacks.index(callback)}.npz"
            if best.is_file():
                with np.load(best) as npz:
                    callback.best_weights = [npz[f"w{i}"] for i in range(len(npz.files))]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if time.monotonic() - self._last < self.every_seconds:
            return
        self._last = time.monotonic()
        name = f"epoch-{epoch + 1}"
        target = self.folder / name
        with io.atomic_dir(target) as tmp:
            self.model.save(tmp / "model.keras")
            callbacks = []
            for index, callback in enumerate(self.callbacks):
                callbacks.append({k: _plain(getattr(callback, k)) for k in CALLBACK_STATE if hasattr(callback, k)})
                if getattr(callback, "best_weights", None) is not None:
                    np.savez(tmp / f"best_weights_{index}.npz",
                             **{f"w{i}": np.asarray(w) for i, w in enumerate(callback.best_weights)})
        state = {"epoch": epoch + 1, "dir": name, "run_id": self.run_id, "history": self.history,
                 "seed_states": [s.tolist() for s in seed_states(self.model)], "callbacks": callbacks}
        io.write_json(self.folder / "latest.json", state)  # atomic: the switch to the new epoch
        for old in self.folder.glob("epoch-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, (np.floating, float)) else int(value) if isinstance(value, (np.integer, int)) else value
