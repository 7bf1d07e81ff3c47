"""The one place Keras models are assembled, in plain Keras.

    input -> [Embedding] -> recurrent layer x N [-> Dropout] -> Dense x M -> head

- input: token ids (IMDB: an Embedding follows), one-hot vectors (characters, words,
  letters) or real-valued series (prices, the sine wave);
- recurrent layers: SimpleRNN, LSTM or GRU, optionally Bidirectional, stacked with
  return_sequences on all but the last, optionally stateful with a fixed batch size;
- head: sigmoid (binary), softmax (classes) or linear (regression).

The prepared data's meta.json says which input and head a dataset needs
(`input_spec`, `task`); the model, regularizer and trainer config groups say the rest.
"""

from __future__ import annotations

from typing import Any

import keras

CELLS = {"simplernn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
LOSSES = {"binary": "binary_crossentropy", "classes": "sparse_categorical_crossentropy",
          "letters": "sparse_categorical_crossentropy", "regression": "mse"}
METRICS = {"binary": ["accuracy"], "classes": ["accuracy"], "letters": ["accuracy"], "regression": ["mae"]}


def regularizer_kwargs(reg: Any) -> dict[str, keras.regularizers.Regularizer]:
    """kernel_regularizer / recurrent_regularizer / bias_regularizer for the chosen weights."""
    if reg.kind == "none":
        return {}
    l1 = reg.l1 if reg.kind in ("l1", "l1l2") else 0.0
    l2 = reg.l2 if reg.kind in ("l2", "l1l2") else 0.0
    names = {"kernel": "kernel_regularizer", "recurrent": "recurrent_regularizer", "bias": "bias_regularizer"}
    return {names[w]: keras.regularizers.L1L2(l1=l1, l2=l2) for w in reg.apply_to}


def build_model(model: Any, reg: Any, input_spec: dict[str, Any], task: str, n_outputs: int = 1,
                batch_size: int | None = None) -> keras.Model:
    """Assemble the model for a dataset's `input_spec` and `task` ("binary" | "classes" | "regression").

    input_spec: {"kind": "tokens", "length": L, "vocab": V} or {"kind": "onehot" | "series",
    "length": L, "features": F}. A stateful model needs `batch_size`: its state is kept per batch row.
    """
    length = input_spec["length"]
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
            return_sequences=i < model.layers - 1,
            stateful=model.stateful,
            unroll=model.unroll,
            name=f"{model.cell}_{i + 1}",
            **regularizer_kwargs(reg),
        )
        layers.append(keras.layers.Bidirectional(recurrent, name=f"bi_{model.cell}_{i + 1}")
                      if model.bidirectional else recurrent)
        if model.dropout_between > 0:
            layers.append(keras.layers.Dropout(model.dropout_between, name=f"dropout_{i + 1}"))
    for j, units in enumerate(model.dense_units):
        layers.append(keras.layers.Dense(units, activation=model.dense_activation, name=f"dense_{j + 1}"))

    if task == "binary":
        layers.append(keras.layers.Dense(1, activation="sigmoid", name="positive"))
    elif task in ("classes", "letters"):
        layers.append(keras.layers.Dense(n_outputs, activation="softmax", name="next"))
    else:
        layers.append(keras.layers.Dense(n_outputs, name="value"))
    return keras.Sequential(layers, name=f"{task}_{model.cell}")


def build_optimizer(trainer: Any) -> keras.optimizers.Optimizer:
    clip = {k: v for k, v in (("clipnorm", trainer.clipnorm), ("clipvalue", trainer.clipvalue)) if v is not None}
    if trainer.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=trainer.learning_rate, **clip)
    if trainer.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=trainer.learning_rate, **clip)
    return keras.optimizers.SGD(learning_rate=trainer.learning_rate, momentum=trainer.momentum, **clip)


def compile_model(model: keras.Model, trainer: Any, task: str) -> keras.Model:
    model.compile(optimizer=build_optimizer(trainer), loss=LOSSES[task], metrics=METRICS[task])
    return model


def reset_states(model: keras.Model) -> None:
    """Forget the state a stateful model carried over, as the course did by hand each epoch."""
    for layer in model.layers:
        inner = getattr(layer, "forward_layer", None)
        for rnn in (layer, inner, getattr(layer, "backward_layer", None)):
            if rnn is not None and getattr(rnn, "stateful", False):
                rnn.reset_states()
