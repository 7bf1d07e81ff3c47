"""The from-scratch NumPy models as the pipeline runs them (model.implementation=numpy):
built from the model config, fit with the trainer config, saved as one .npz file.

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
    return CLASSES[model_cfg.cell](input_size, int(model_cfg.units), 2, seed=seed, dtype=np.float64,
                                   init_scale=float(model_cfg.init_scale))


def optimizer(trainer: Any) -> SGD | Adam:
    kind = SGD if trainer.optimizer == "sgd" else Adam
    return kind(float(trainer.learning_rate), clip_value=trainer.clipvalue, clip_norm=trainer.clipnorm)


def mask_of(x: np.ndarray) -> np.ndarray:
    """Real steps of one-hot input: a padding vector is all zeros, a word never is."""
    return x.any(axis=-1)


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
