"""The from-scratch NumPy models as the pipeline runs them (model.implementation=numpy):
built from the model config, fit with the trainer config, saved as one .npz file;
`NumpyModel` is this implementation of the interface in rnnlab.models.

The course's sentiment RNN reads one-hot words and answers with a softmax over two
classes, so this path takes a one-hot input and a binary task; rnnlab.config refuses
any other combination before data is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from rnnlab import io
from rnnlab.models.numpy_common import SGD, Adam, RecurrentClassifier
from rnnlab.models.numpy_lstm import NumpyLSTM
from rnnlab.models.numpy_rnn import NumpyRNN

CLASSES: dict[str, type[RecurrentClassifier]] = {"simplernn": NumpyRNN, "lstm": NumpyLSTM}


def build(model_cfg: Any, input_size: int, seed: int) -> RecurrentClassifier:
    model = CLASSES[model_cfg.cell](input_size, int(model_cfg.units), 2, seed=seed, dtype=np.float64,
                                    init_scale=float(model_cfg.init_scale))
    if model_cfg.cell == "lstm":
        units = int(model_cfg.units)
        model.params["b"][units:2 * units] = model_cfg.forget_bias
    return model


def optimizer(trainer: Any) -> SGD | Adam:
    kind = SGD if trainer.optimizer == "sgd" else Adam
    return kind(float(trainer.learning_rate), clip_value=trainer.clipvalue, clip_norm=trainer.clipnorm)


def mask_of(x: np.ndarray) -> np.ndarray | None:
    """Real steps of one-hot input: a padding vector is all zeros, a word never is; None when
    nothing is padded, so unpadded sequences take the models' plain path."""
    mask = x.any(axis=-1)
    return None if mask.all() else mask


def fit(model: RecurrentClassifier, trainer: Any, x: np.ndarray, y: np.ndarray,
        on_epoch_end: Optional[Callable[[int, dict[str, float]], None]] = None) -> dict[str, list[float]]:
    """Train on (x, y) with the trainer's optimizer, batch size and epochs; returns per-epoch history."""
    return model.fit(x, np.asarray(y, dtype=np.int64), mask_of(x), optimizer=optimizer(trainer),
                     epochs=int(trainer.epochs), batch_size=int(trainer.batch_size), on_epoch_end=on_epoch_end)


def positive_probability(model: RecurrentClassifier, x: np.ndarray) -> np.ndarray:
    """P(label 1) per sequence, what a Keras sigmoid head gives."""
    return model.predict_proba(x, mask_of(x))[:, 1]


def save(model: RecurrentClassifier, cell: str, path: Path) -> None:
    """Weights and what rebuilds the model, in one .npz (written atomically)."""
    inputs = model.params["W_xh" if cell == "simplernn" else "W_x"]
    spec = {"cell": cell, "input_size": int(inputs.shape[0]),
            "units": int(model.params["W_hy"].shape[0]), "outputs": int(model.params["W_hy"].shape[1]),
            "dtype": str(model.dtype)}
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, spec=np.array(json.dumps(spec)), **model.params)


def load(path: Path) -> RecurrentClassifier:
    with np.load(path) as saved:
        spec = json.loads(str(saved["spec"]))
        model = CLASSES[spec["cell"]](spec["input_size"], spec["units"], spec["outputs"], dtype=spec["dtype"])
        for name in model.params:
            model.params[name] = saved[name].astype(model.dtype)
    return model


class NumpyModel:
    """A from-scratch model behind the interface of rnnlab.models."""

    implementation = "numpy"
    file_name = "model.npz"

    def __init__(self, model: RecurrentClassifier, cell: str) -> None:
        self.model, self.cell = model, cell

    @classmethod
    def build(cls, model_cfg: Any, meta: dict[str, Any], seed: int) -> "NumpyModel":
        return cls(build(model_cfg, meta["input_spec"]["features"], seed), str(model_cfg.cell))

    def fit(self, trainer: Any, inputs: dict[str, Any], callbacks: list[Any],
            initial_epoch: int = 0, jit_compile: bool | str = False) -> dict[str, list[float]]:
        """Fit on inputs["x"], inputs["y"]; each callback's on_epoch_end gets every epoch's
        logs, as Keras calls it, and on_train_end once at the end. (NumPy compiles nothing:
        jit_compile is ignored.)"""
        def on_epoch_end(epoch: int, logs: dict[str, float]) -> None:
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs)
        try:
            x = inputs["x"].astype(self.model.dtype, copy=False)
            return self.model.fit(x, np.asarray(inputs["y"], dtype=np.int64), mask_of(x), optimizer=optimizer(trainer),
                                  epochs=int(trainer.epochs), batch_size=int(trainer.batch_size),
                                  on_epoch_end=on_epoch_end)
        finally:
            for callback in callbacks:
                callback.on_train_end()

    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """P(label 1) per sequence, what a Keras sigmoid head gives."""
        return positive_probability(self.model, x)

    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x)

    def reset_states(self) -> None:
        """Nothing to reset: the NumPy models start every sequence from a zero state."""

    def save(self, folder: Path) -> str:
        save(self.model, self.cell, folder / self.file_name)
        return self.file_name

    @classmethod
    def load(cls, folder: Path) -> "NumpyModel":
        with np.load(folder / cls.file_name) as saved:
            cell = json.loads(str(saved["spec"]))["cell"]
        return cls(load(folder / cls.file_name), cell)

    def state_gradients(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """g_t from the model's own backpropagation through time."""
        grads = self.model.loss_and_grads(x.astype(self.model.dtype), y)[1]["h"]  # of the batch's mean loss
        return np.linalg.norm(grads * len(x), axis=-1).mean(axis=0)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return self.model.evaluate(x.astype(self.model.dtype), y)[1]
