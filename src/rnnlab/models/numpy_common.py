"""What the from-scratch NumPy RNN and LSTM share: the softmax loss, gradient clipping,
SGD and Adam, and the training loop around a model's forward and backward.

No autodiff anywhere: every gradient in numpy_rnn.py and numpy_lstm.py is written out,
and tests/test_numpy_rnn.py checks them against finite differences and TensorFlow.

Conventions, shared by both models so that one training loop serves them:

    x        (batch, time, features), float32 or float64
    mask     (batch, time), 1 on real steps and 0 on padding, or None when nothing is padded
    y        (batch,) class ids for a many-to-one model, (batch, time) for many-to-many
    logits   (batch, classes) or (batch, time, classes)

Weights are stored as Keras stores them, (inputs, units), so a batch of row vectors is
multiplied on the right: x_t @ W_xh is the course's W_xh x_t for every phrase at once,
and the Keras parity test copies weights without transposing.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

Params = dict[str, np.ndarray]


def tanh(z: np.ndarray) -> np.ndarray:
    """tanh through exp, exact to about 2e-16 absolute in float64.

    On CPUs without AVX-512, NumPy's float64 np.tanh falls back to scalar libm and takes
    three to four times as long as np.exp, and a batched step spends most of its time here.
    """
    # For z below about -354, exp(-2z) overflows to inf and the result is the right limit, -1.
    with np.errstate(over="ignore"):
        return 2.0 / (1.0 + np.exp(-2.0 * z)) - 1.0


def sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def softmax(logits: np.ndarray) -> np.ndarray:
    # Subtracting the row maximum keeps exp() from overflowing; the result is the same.
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def cross_entropy(logits: np.ndarray, y: np.ndarray, mask: Optional[np.ndarray] = None) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient w.r.t. the logits.

    Many-to-one: the mean over the batch. Many-to-many: the mean over real (unmasked) steps,
    so a padded step neither adds to the loss nor pulls on the weights.
    """
    probs = softmax(logits)
    weights = np.ones(y.shape, dtype=logits.dtype) if mask is None or logits.ndim == 2 else mask.astype(logits.dtype)
    count = weights.sum()
    picked = np.take_along_axis(probs, y[..., None], axis=-1)[..., 0]
    loss = float(-(weights * np.log(picked)).sum() / count)
    dlogits = probs
    np.put_along_axis(dlogits, y[..., None], picked[..., None] - 1, axis=-1)
    dlogits *= (weights / count)[..., None]
    return loss, dlogits


def accuracy(logits: np.ndarray, y: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    correct = (logits.argmax(axis=-1) == y).astype(np.float64)
    if mask is None or logits.ndim == 2:
        return float(correct.mean())
    return float((correct * mask).sum() / mask.sum())


def flat_steps(a: np.ndarray) -> np.ndarray:
    """(batch, time, n) -> (batch * time, n), so that a weight gradient summed over every
    step of every sequence is one matrix product after the time loop."""
    return a.reshape(-1, a.shape[-1])


def clip_gradients(grads: Params, clip_value: Optional[float], clip_norm: Optional[float]) -> Params:
    """Elementwise clip to [-clip_value, clip_value] (the course's np.clip), then rescale all
    gradients together when their global norm exceeds clip_norm (Pascanu et al., 2013), which
    keeps the update's direction where the elementwise clip bends it."""
    if clip_value is not None:
        grads = {k: np.clip(g, -clip_value, clip_value) for k, g in grads.items()}
    if clip_norm is not None:
        norm = np.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        if norm > clip_norm:
            grads = {k: g * (clip_norm / norm) for k, g in grads.items()}
    return grads


class SGD:
    """Plain gradient descent, the course's update: w -= learning_rate * clipped gradient."""

    def __init__(self, learning_rate: float = 2e-2, clip_value: Optional[float] = None,
                 clip_norm: Optional[float] = None) -> None:
        self.learning_rate, self.clip_value, self.clip_norm = learning_rate, clip_value, clip_norm

    def step(self, params: Params, grads: Params) -> None:
        """Update `params` in place; keys of `grads` that are not parameters (h, x, ...) are ignored."""
        grads = clip_gradients({k: grads[k] for k in params}, self.clip_value, self.clip_norm)
        for name, value in params.items():
            value -= self.learning_rate * grads[name]


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction; epsilon as Keras' default."""

    def __init__(self, learning_rate: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, clip_value: Optional[float] = None, clip_norm: Optional[float] = None) -> None:
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.clip_value, self.clip_norm = clip_value, clip_norm
        self.iterations = 0
        self.m: Params = {}
        self.v: Params = {}

    def step(self, params: Params, grads: Params) -> None:
        """Update `params` in place; keys of `grads` that are not parameters (h, x, ...) are ignored."""
        grads = clip_gradients({k: grads[k] for k in params}, self.clip_value, self.clip_norm)
        self.iterations += 1
        # Folding both bias corrections into the step size saves two arrays per parameter.
        t = self.iterations
        step_size = self.learning_rate * (1 - self.beta_2 ** t) ** 0.5 / (1 - self.beta_1 ** t)
        for name, value in params.items():
            g = grads[name]
            m = self.m.setdefault(name, np.zeros_like(value))
            v = self.v.setdefault(name, np.zeros_like(value))
            m *= self.beta_1
            m += (1 - self.beta_1) * g
            v *= self.beta_2
            v += (1 - self.beta_2) * g * g
            value -= step_size * m / (np.sqrt(v) + self.epsilon)


class RecurrentClassifier:
    """Training and prediction around `forward` and `backward`, which each model writes out.

    A subclass sets `params`, `dtype`, `return_sequences` and `rng` (seeded, so that one seed
    gives the same initial weights and the same batch order) and provides

        forward(x, mask=None) -> (logits, cache)
        backward(cache, dlogits) -> grads: one array per parameter, plus "x" (dL/dx),
                                    "h" (dL/dh_t, batch x time x hidden) and "h0"
    """

    params: Params
    dtype: np.dtype
    return_sequences: bool
    rng: np.random.Generator

    def forward(self, x: np.ndarray, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(self, cache: Any, dlogits: np.ndarray) -> Params:
        raise NotImplementedError

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, mask: Optional[np.ndarray] = None) -> tuple[float, Params]:
        """Mean cross-entropy on (x, y) and its gradient for every parameter, input and hidden state."""
        logits, cache = self.forward(x, mask)
        loss, dlogits = cross_entropy(logits, y, mask)
        return loss, self.backward(cache, dlogits)

    def predict_proba(self, x: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
        return softmax(self.forward(x, mask)[0])

    def evaluate(self, x: np.ndarray, y: np.ndarray, mask: Optional[np.ndarray] = None) -> tuple[float, float]:
        """(loss, accuracy) with the current weights; for many-to-many, over real steps only."""
        logits, _ = self.forward(x, mask)
        return cross_entropy(logits, y, mask)[0], accuracy(logits, y, mask)

    def fit(self, x: np.ndarray, y: np.ndarray, mask: Optional[np.ndarray] = None, *, optimizer: SGD | Adam,
            epochs: int = 1, batch_size: int = 32, shuffle: bool = True,
            validation: Optional[tuple[np.ndarray, ...]] = None,
            on_epoch_end: Optional[Callable[[int, dict[str, float]], None]] = None) -> dict[str, list[float]]:
        """Mini-batch training; returns per-epoch history.

        loss and accuracy are the means over the epoch's batches as they were trained on,
        as Keras and the course report them; val_loss and val_accuracy, when `validation`
        is (x, y) or (x, y, mask), are measured after the epoch. `on_epoch_end(epoch, logs)`
        is called after each epoch with that epoch's values, as a Keras callback is.
        """
        history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        if validation is not None:
            history.update(val_loss=[], val_accuracy=[])
        n = len(x)
        for _ in range(epochs):
            # One shuffled copy per epoch, then batches as slices (views, not copies).
            xs, ys, ms = x, y, mask
            if shuffle:
                order = self.rng.permutation(n)
                xs, ys, ms = x[order], y[order], None if mask is None else mask[order]
            total_loss = total_correct = 0.0
            for start in range(0, n, batch_size):
                batch = slice(start, start + batch_size)
                xb, yb, mb = xs[batch], ys[batch], None if ms is None else ms[batch]
                logits, cache = self.forward(xb, mb)
                loss, dlogits = cross_entropy(logits, yb, mb)
                optimizer.step(self.params, self.backward(cache, dlogits))
                # Weighted by batch size so that a short last batch counts for what it holds
                # (by sequences: a many-to-many batch's padded steps do not count).
                total_loss += loss * len(yb)
                total_correct += accuracy(logits, yb, mb) * len(yb)
            history["loss"].append(total_loss / n)
            history["accuracy"].append(total_correct / n)
            if validation is not None:
                val_loss, val_accuracy = self.evaluate(*validation)
                history["val_loss"].append(val_loss)
                history["val_accuracy"].append(val_accuracy)
            if on_epoch_end is not None:
                on_epoch_end(len(history["loss"]) - 1, {key: values[-1] for key, values in history.items()})
        return history
