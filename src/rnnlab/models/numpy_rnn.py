"""An Elman RNN from scratch in NumPy: forward, full backpropagation through time, training.

    h_t = tanh(x_t @ W_xh + h_{t-1} @ W_hh + b_h)
    y   = h_T @ W_hy + b_y                    many-to-one (the course's sentiment RNN)
    y_t = h_t @ W_hy + b_y                    many-to-many (return_sequences=True)

This is the course's RNN (one phrase at a time, hidden states in a dict per step) made to
run on a whole batch at once: the time loop stays, since h_t needs h_{t-1}, but each
step handles every sequence with one matrix product, and the weight gradients, summed
over all steps in the course's loop, become one product over the stacked steps after it.

Variable lengths: a mask (batch, time) marks real steps, and on a padded step the state
is carried over unchanged, h_t = h_{t-1} (what Keras does with a mask). So padding at the
front leaves the state at h_0 until the phrase begins, padding at the back carries the
final state to the last step, and in both cases h_T is the state after the phrase's last
word and the result equals the unpadded one (tested). The phrases helper pads at the
front, like keras' IMDB; the carry makes either side safe.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from rnnlab.models.numpy_common import Params, RecurrentClassifier, flat_steps, tanh


class NumpyRNN(RecurrentClassifier):
    """Elman RNN with a softmax head; see the module docstring for the equations.

    The defaults are the course's: 64 hidden units, weights drawn as randn / 1000
    (init_scale), zero biases. `seed` fixes the initial weights and fit's batch order.
    """

    def __init__(self, input_size: int, hidden_size: int = 64, output_size: int = 2, *,
                 return_sequences: bool = False, dtype: Any = np.float64, seed: int = 0,
                 init_scale: float = 1e-3) -> None:
        self.dtype = np.dtype(dtype)
        self.return_sequences = return_sequences
        self.rng = np.random.default_rng(seed)

        def draw(*shape: int) -> np.ndarray:
            return (self.rng.standard_normal(shape) * init_scale).astype(self.dtype)

        self.params: Params = {
            "W_xh": draw(input_size, hidden_size),
            "W_hh": draw(hidden_size, hidden_size),
            "b_h": np.zeros(hidden_size, dtype=self.dtype),
            "W_hy": draw(hidden_size, output_size),
            "b_y": np.zeros(output_size, dtype=self.dtype),
        }

    def forward(self, x: np.ndarray, mask: Optional[np.ndarray] = None,
                h0: Optional[np.ndarray] = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Logits, and the cache backward needs. `h0` (batch, hidden) is the state before
        the first step, zeros by default."""
        p = self.params
        x = np.asarray(x, dtype=self.dtype)
        batch, steps, _ = x.shape
        m = None if mask is None else np.asarray(mask, dtype=self.dtype)[:, :, None]
        # hs[:, t + 1] is h_t and hs[:, 0] is h_0: the course's last_hs dict as one array.
        hs = np.empty((batch, steps + 1, p["W_hh"].shape[0]), dtype=self.dtype)
        hs[:, 0] = 0.0 if h0 is None else h0
        # The input's share of every step does not depend on h, so it is one product up front.
        xw = (flat_steps(x) @ p["W_xh"] + p["b_h"]).reshape(batch, steps, hs.shape[-1])
        for t in range(steps):
            h_prev = hs[:, t]
            h = tanh(xw[:, t] + h_prev @ p["W_hh"])
            hs[:, t + 1] = h if m is None else h_prev + m[:, t] * (h - h_prev)
        states = hs[:, 1:] if self.return_sequences else hs[:, -1]
        logits = states @ p["W_hy"] + p["b_y"]
        return logits, {"x": x, "m": m, "hs": hs}

    def backward(self, cache: dict[str, Any], dlogits: np.ndarray) -> Params:
        """Gradients by backpropagation through time, for every parameter, and also:

            "x"   dL/dx_t   (batch, time, features)
            "h"   dL/dh_t   (batch, time, hidden), everything that reaches h_t: from its own
                            output and through h_{t+1}; its norm per t is what a study of
                            vanishing and exploding gradients plots
            "h0"  dL/dh_0   (batch, hidden)
        """
        p = self.params
        x, m, hs = cache["x"], cache["m"], cache["hs"]
        batch, steps, _ = x.shape
        hidden = hs.shape[-1]
        grads: Params = {}
        states = hs[:, 1:] if self.return_sequences else hs[:, -1]
        grads["W_hy"] = flat_steps(states).T @ flat_steps(dlogits)
        grads["b_y"] = flat_steps(dlogits).sum(axis=0)
        from_output = dlogits @ p["W_hy"].T
        # dh_t/da_t = 1 - h_t^2 (tanh'), for all steps at once. On a padded step nothing goes
        # into a new state (m = 0) and all of dL/dh_t goes straight back to h_{t-1} (carry).
        tanh_grad = 1.0 - hs[:, 1:] ** 2
        if m is not None:
            tanh_grad *= m
            carry = 1.0 - m
        dh_all = np.empty((batch, steps, hidden), dtype=self.dtype)
        da_all = np.empty((batch, steps, hidden), dtype=self.dtype)
        dh_next = np.zeros((batch, hidden), dtype=self.dtype)
        for t in reversed(range(steps)):
            if self.return_sequences:
                dh = from_output[:, t] + dh_next
            else:
                dh = from_output + dh_next if t == steps - 1 else dh_next
            dh_all[:, t] = dh
            da = da_all[:, t]
            np.multiply(dh, tanh_grad[:, t], out=da)
            dh_next = da @ p["W_hh"].T
            if m is not None:
                dh_next += carry[:, t] * dh
        grads["W_xh"] = flat_steps(x).T @ flat_steps(da_all)
        grads["W_hh"] = flat_steps(hs[:, :-1]).T @ flat_steps(da_all)
        grads["b_h"] = flat_steps(da_all).sum(axis=0)
        grads["x"] = (flat_steps(da_all) @ p["W_xh"].T).reshape(x.shape)
        grads["h"] = dh_all
        grads["h0"] = dh_next
        return grads

