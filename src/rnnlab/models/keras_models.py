"""The one place Keras models are assembled, in plain Keras.

    Embedding -> [Bidirectional] recurrent layer x N -> Dense head

The recurrent layers are SimpleRNN, LSTM or GRU; every setting comes from the
model, regularizer and trainer config groups.
"""

from __future__ import annotations

from typing import Any

import keras

CELLS = {"simplernn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def regularizer_kwargs(reg: Any) -> dict[str, keras.regularizers.Regularizer]:
    """kernel_regularizer / recurrent_regularizer / bias_regularizer for the chosen weights."""
    if reg.kind == "none":
        return {}
    l1 = reg.l1 if reg.kind in ("l1", "l1l2") else 0.0
    l2 = reg.l2 if reg.kind in ("l2", "l1l2") else 0.0
    names = {"kernel": "kernel_regularizer", "recurrent": "recurrent_regularizer", "bias": "bias_regularizer"}
    return {names[w]: keras.regularizers.L1L2(l1=l1, l2=l2) for w in reg.apply_to}


def build_sentiment_model(model: Any, reg: Any, num_words: int, maxlen: int) -> keras.Model:
    """A binary classifier of token-id sequences (IMDB)."""
    layers: list[keras.layers.Layer] = [
        keras.Input(shape=(maxlen,), dtype="int32", name="tokens"),
        keras.layers.Embedding(num_words, model.embedding_dim, name="embedding"),
    ]
    for i in range(model.layers):
        recurrent = CELLS[model.cell](
            model.units,
            dropout=model.dropout,
            recurrent_dropout=model.recurrent_dropout,
            return_sequences=i < model.layers - 1,
            name=f"{model.cell}_{i + 1}",
            **regularizer_kwargs(reg),
        )
        layers.append(keras.layers.Bidirectional(recurrent) if model.bidirectional else recurrent)
    layers.append(keras.layers.Dense(1, activation="sigmoid", name="positive"))
    return keras.Sequential(layers, name=f"sentiment_{model.cell}")


def build_optimizer(trainer: Any) -> keras.optimizers.Optimizer:
    clip = {k: v for k, v in (("clipnorm", trainer.clipnorm), ("clipvalue", trainer.clipvalue)) if v is not None}
    if trainer.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=trainer.learning_rate, **clip)
    if trainer.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=trainer.learning_rate, **clip)
    return keras.optimizers.SGD(learning_rate=trainer.learning_rate, momentum=trainer.momentum, **clip)
