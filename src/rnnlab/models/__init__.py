"""The models, behind one small interface that train, evaluate and the gradient study use:

    build(model_cfg, regularizer, meta, batch_size, seed) -> model     (meta: the prepared data's)
    load(folder, task) -> model
    model.fit(trainer, inputs, callbacks, initial_epoch, jit_compile) -> per-epoch history
    model.predict(x)            the head's output per row (P(positive), class probabilities, values)
    model.predict_batch(x)      one direct call, for step-by-step generation and stateful reading
    model.reset_states()
    model.save(folder) -> file name
    model.state_gradients(x, y) -> g_t = mean_i ||dL_i/dh_t||, t = 1..T

`model.implementation` (keras | numpy) is chosen here and nowhere else: keras_recurrent.py
assembles every Keras model; numpy_models.py adapts the from-scratch NumPy RNN and LSTM
(numpy_rnn.py, numpy_lstm.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Model(Protocol):
    implementation: str

    def fit(self, trainer: Any, inputs: dict[str, Any], callbacks: list[Any],
            initial_epoch: int = 0, jit_compile: bool | str = "auto") -> dict[str, list[float]]: ...
    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray: ...
    def predict_batch(self, x: np.ndarray) -> np.ndarray: ...
    def reset_states(self) -> None: ...
    def save(self, folder: Path) -> str: ...
    def state_gradients(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...


def build(model_cfg: Any, regularizer: Any, meta: dict[str, Any], batch_size: int, seed: int,
          logits: bool = False) -> Model:
    """The model `model_cfg` describes, for a dataset's `meta` (its input_spec and task), with
    the initial weights that `seed` gives. logits=True: a classifier head without softmax."""
    if model_cfg.implementation == "numpy":
        from rnnlab.models.numpy_models import NumpyModel

        return NumpyModel.build(model_cfg, meta, seed)
    from rnnlab.models.keras_recurrent import KerasModel

    return KerasModel.build(model_cfg, regularizer, meta, batch_size, seed, logits=logits)


def load(folder: Path, task: str) -> Model:
    """The model saved in `folder` by `save`: model.npz (NumPy) or model.keras."""
    from rnnlab.models.numpy_models import NumpyModel

    if (folder / NumpyModel.file_name).is_file():
        return NumpyModel.load(folder)
    from rnnlab.models.keras_recurrent import KerasModel

    return KerasModel.load(folder, task)
