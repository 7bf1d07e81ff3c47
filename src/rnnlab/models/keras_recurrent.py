"""Every Keras model of the pipeline, whatever its cell: assembled here, in plain Keras.

    input -> [Embedding] -> recurrent layer x N [-> Dropout] -> Dense x M -> head

- input: token ids (IMDB: an Embedding follows), one-hot vectors (characters, words,
  letters) or real-valued series (prices, the sine wave);
- recurrent layers: SimpleRNN, LSTM or GRU, optionally Bidirectional, stacked with
  return_sequences on all but the last, optionally stateful with a fixed batch size;
- head: sigmoid (binary), softmax (classes) or linear (regression).

The prepared data's meta.json says which input and head a dataset needs
(`input_spec`, `task`); the model, regularizer and trainer config groups say the rest.
`KerasModel` is this implementation of the interface in rnnlab.models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from rnnlab.errors import ConfigError

CELLS = {"simplernn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
LOSSES = {"binary": "binary_crossentropy", "next_char": "sparse_categorical_crossentropy",
          "char_lm": "sparse_categorical_crossentropy",
          "letters": "sparse_categorical_crossentropy", "regression": "mse"}
METRICS = {"binary": ["accuracy"], "next_char": ["accuracy"], "char_lm": ["accuracy"], "letters": ["accuracy"], "regression": ["mae"]}


def regularizer_kwargs(reg: Any) -> dict[str, keras.regularizers.Regularizer]:
    """kernel_regularizer / recurrent_regularizer / bias_regularizer for the chosen weights."""
    if reg.kind == "none":
        return {}
    l1 = reg.l1 if reg.kind in ("l1", "l1l2") else 0.0
    l2 = reg.l2 if reg.kind in ("l2", "l1l2") else 0.0
    names = {"kernel": "kernel_regularizer", "recurrent": "recurrent_regularizer", "bias": "bias_regularizer"}
    return {names[w]: keras.regularizers.L1L2(l1=l1, l2=l2) for w in reg.apply_to}


class ForgetGateBias(keras.initializers.Initializer):
    """An LSTM bias of zeros except the forget gate's block (Keras' order i, f, c, o).

    A bias b holds the gate near sigmoid(b) at first, so c_t keeps sigmoid(b) of c_{t-1} per
    step and sigmoid(b)^99 of it over 99 steps: 1e-13.6 for b = 1, 6e-3 for b = 3."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        units = shape[0] // 4
        bias = np.zeros(shape, dtype="float32")
        bias[units:2 * units] = self.value
        return keras.ops.convert_to_tensor(bias, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


def cell_options(model: Any) -> dict[str, Any]:
    """The recurrent weights' initialisation: Keras' defaults unless the config changes them."""
    options: dict[str, Any] = {"recurrent_initializer": model.recurrent_initializer}
    if model.cell == "lstm" and model.forget_bias != 1.0:
        # Keras' own unit_forget_bias starts the forget gate's bias at 1; this sets any value.
        options.update(unit_forget_bias=False, bias_initializer=ForgetGateBias(float(model.forget_bias)))
    return options


def build_model(model: Any, reg: Any, input_spec: dict[str, Any], task: str, n_outputs: int = 1,
                batch_size: int | None = None, logits: bool = False) -> keras.Model:
    """Assemble the model for a dataset's `input_spec` and `task` ("binary" | "next_char" |
    "letters" | "regression").

    input_spec: {"kind": "tokens", "length": L, "vocab": V} or {"kind": "onehot" | "series",
    "length": L, "features": F}. A stateful model needs `batch_size`: its state is kept per batch row.
    logits=True ends a classifier in n_outputs logits, without softmax (the gradient study).
    """
    # A language model reads any length (chunks in training, longer contexts when scoring) and
    # answers at every position: every layer returns its sequence and the head applies to each step.
    per_step = task == "char_lm"
    length = None if per_step else input_spec["length"]
    fixed_batch = batch_size if model.stateful else None
    if input_spec["kind"] == "tokens":
        layers: list[keras.layers.Layer] = [
            keras.Input(shape=(length,), batch_size=fixed_batch, dtype="int32", name="tokens"),
            keras.layers.Embedding(input_spec["vocab"], model.embedding_dim, name="embedding"),
        ]
    else:
        layers = [keras.Input(shape=(length, input_spec["features"]), batch_size=fixed_batch, name=input_spec["kind"])]

    for i in range(model.layers):
        recurrent = CELLS[model.cell](
            model.units,
            activation=model.activation,
            dropout=model.dropout,
            recurrent_dropout=model.recurrent_dropout,
            return_sequences=per_step or i < model.layers - 1,
            stateful=model.stateful,
            unroll=model.unroll,
            name=f"{model.cell}_{i + 1}",
            **cell_options(model),
            **regularizer_kwargs(reg),
        )
        layers.append(keras.layers.Bidirectional(recurrent, name=f"bi_{model.cell}_{i + 1}")
                      if model.bidirectional else recurrent)
        if model.dropout_between > 0:
            layers.append(keras.layers.Dropout(model.dropout_between, name=f"dropout_{i + 1}"))
    for j, units in enumerate(model.dense_units):
        layers.append(keras.layers.Dense(units, activation=model.dense_activation, name=f"dense_{j + 1}"))

    # Under a mixed precision policy the head still computes in float32: a softmax or sigmoid in
    # 16 bits rounds small probabilities to 0 and the loss to inf.
    head = {"dtype": "float32"} if keras.config.dtype_policy().name != "float32" else {}
    if logits:
        layers.append(keras.layers.Dense(n_outputs, name="logits", **head))
    elif task == "binary":
        layers.append(keras.layers.Dense(1, activation="sigmoid", name="positive", **head))
    elif task in ("next_char", "char_lm", "letters"):
        layers.append(keras.layers.Dense(n_outputs, activation="softmax", name="next", **head))
    else:
        layers.append(keras.layers.Dense(n_outputs, name="value", **head))
    return keras.Sequential(layers, name=f"{task}_{model.cell}")


def build_optimizer(trainer: Any) -> keras.optimizers.Optimizer:
    # trainer.clipnorm bounds the norm of all gradients together (Keras' global_clipnorm), as the
    # NumPy models clip; Keras' own clipnorm would clip each weight's gradient on its own.
    clip = {k: v for k, v in (("global_clipnorm", trainer.clipnorm), ("clipvalue", trainer.clipvalue))
            if v is not None}
    if trainer.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=trainer.learning_rate, **clip)
    if trainer.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=trainer.learning_rate, **clip)
    return keras.optimizers.SGD(learning_rate=trainer.learning_rate, momentum=trainer.momentum, **clip)


def compile_model(model: keras.Model, trainer: Any, task: str, logits: bool = False,
                  jit_compile: bool | str = "auto") -> keras.Model:
    """Compile with the trainer's optimizer, the task's loss and metrics, and XLA or not."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True) if logits else LOSSES[task]
    model.compile(optimizer=build_optimizer(trainer), loss=loss, metrics=METRICS[task], jit_compile=jit_compile)
    return model


def reset_states(model: keras.Model) -> None:
    """Forget the state a stateful model carried over, as the course did by hand each epoch."""
    for layer in model.layers:
        inner = getattr(layer, "forward_layer", None)
        for rnn in (layer, inner, getattr(layer, "backward_layer", None)):
            if rnn is not None and getattr(rnn, "stateful", False):
                rnn.reset_states()


class KerasModel:
    """A Keras model behind the interface of rnnlab.models (build, fit, predict, save, load,
    per-step gradients)."""

    implementation = "keras"
    file_name = "model.keras"

    def __init__(self, model: keras.Model, task: str, logits: bool = False) -> None:
        self.model, self.task, self.logits = model, task, logits

    @classmethod
    def build(cls, model: Any, reg: Any, meta: dict[str, Any], batch_size: int, seed: int,
              logits: bool = False) -> "KerasModel":
        keras.utils.set_random_seed(seed)
        built = build_model(model, reg, meta["input_spec"], meta["task"], n_outputs=meta.get("n_outputs", 1),
                            batch_size=batch_size, logits=logits)
        return cls(built, meta["task"], logits)

    def fit(self, trainer: Any, inputs: dict[str, Any], callbacks: list[Any],
            initial_epoch: int = 0, jit_compile: bool | str = "auto") -> dict[str, list[float]]:
        """Compile with the trainer's optimizer and fit on `inputs` (what model.fit reads:
        x, y, batch_size, validation_split or validation_data, shuffle). From initial_epoch > 0
        (a resumed checkpoint) the model keeps the optimizer state it was loaded with.
        jit_compile: XLA for the training step (rnnlab.backends.jit_compile)."""
        if initial_epoch == 0 or self.model.optimizer is None:
            compile_model(self.model, trainer, self.task, self.logits, jit_compile)
        else:
            self.model.jit_compile = jit_compile
        callbacks = list(callbacks)
        if self.stateful:
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: self.reset_states()))
        return self.model.fit(**inputs, epochs=trainer.epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                              verbose=trainer.verbose).history

    @property
    def stateful(self) -> bool:
        return any(getattr(layer, "stateful", False) or getattr(getattr(layer, "forward_layer", None), "stateful", False)
                   for layer in self.model.layers)

    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """The head's output for every row: P(positive) (binary, one value per row), class
        probabilities, or values (regression, one per row)."""
        out = self.model.predict(x, batch_size=batch_size, verbose=0)
        return out.reshape(-1) if out.shape[-1] == 1 else out

    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        """One direct call on one batch: for generation step by step and stateful reading."""
        return np.asarray(self.model(x, training=False))

    def reset_states(self) -> None:
        reset_states(self.model)

    def save(self, folder: Path) -> str:
        self.model.save(folder / self.file_name)
        return self.file_name

    @classmethod
    def load(cls, folder: Path, task: str) -> "KerasModel":
        model = keras.models.load_model(folder / cls.file_name)
        return cls(model, task, logits=model.layers[-1].name == "logits")

    def state_gradients(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """g_t = mean over sequences i of ||dL_i/dh_t||, t = 1..T, for a one-layer model with a
        logits head, by replaying its cell step by step with a zero probe added to each h_t.
        The derivative is the loaded backend's own (TensorFlow's GradientTape, jax.grad, torch's
        autograd); the replay is Keras ops, the same on each."""
        recurrent = [layer for layer in self.model.layers if isinstance(layer, keras.layers.RNN)]
        if len(recurrent) != 1 or not self.logits:
            raise ConfigError("per-step gradients need one recurrent layer and a logits head (the gradient study's models)")
        cell, head = recurrent[0].cell, self.model.layers[-1]
        ops = keras.ops
        x = ops.convert_to_tensor(x, dtype="float32")
        y = ops.convert_to_tensor(y, dtype="int32")
        batch, steps = int(x.shape[0]), int(x.shape[1])
        units = int(head.kernel.shape[0])
        n_states = 2 if isinstance(cell, keras.layers.LSTMCell) else 1

        def loss_of(probes: Any) -> Any:
            states = [ops.zeros((batch, units))] * n_states
            h = states[0]
            for t in range(steps):
                h, states = cell(x[:, t], states, training=False)
                h = h + probes[t]  # dL/d(probe_t) = dL/dh_t: every later use of h_t goes through h
                states = [h, *states[1:]]
            # Summed, not averaged: each sequence's gradient is then that sequence's own dL_i/dh_t.
            return ops.sum(keras.losses.sparse_categorical_crossentropy(y, head(h), from_logits=True))

        grads = _gradient(loss_of, np.zeros((steps, batch, units), dtype="float32"))  # (T, batch, units)
        return np.linalg.norm(grads, axis=-1).mean(axis=1)


def _gradient(f: Any, at: np.ndarray) -> np.ndarray:
    """df/dx at x = `at` for a scalar f written in Keras ops, by the loaded backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        probes = tf.constant(at)
        with tf.GradientTape() as tape:
            tape.watch(probes)
            value = f(probes)
        return tape.gradient(value, probes).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(f)(jax.numpy.asarray(at)))
    if backend == "torch":
        import torch

        probes = torch.tensor(at, requires_grad=True)
        f(probes).backward()
        return probes.grad.detach().cpu().numpy()
    raise ConfigError(f"KERAS_BACKEND={backend}: per-step gradients need tensorflow, jax or torch")
