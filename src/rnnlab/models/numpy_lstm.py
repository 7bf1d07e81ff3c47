"""An LSTM from scratch in NumPy: forward, full backpropagation through time, training.

    z_t = x_t @ W_x + h_{t-1} @ W_h + b        four blocks, in Keras' order i, f, c, o
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o)
    g   = tanh(z_c)                             the cell candidate
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)
    y   = h_T @ W_hy + b_y    (y_t = h_t @ W_hy + b_y with return_sequences=True)

The gates share one matrix product per step, laid out as Keras lays out its kernel
(inputs, 4 * units), so weights copy between the two unchanged. The interface, the
batching and the masking are the RNN's (numpy_rnn.py): on a padded step both h and c are
carried over unchanged, so padding on either side gives the unpadded result.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from rnnlab.models.numpy_common import Params, RecurrentClassifier, flat_steps, sigmoid, tanh


class NumpyLSTM(RecurrentClassifier):
    """LSTM with a softmax head, with the same constructor and methods as NumpyRNN.

    Weights are drawn as randn * init_scale (the course's randn / 1000 by default); the
    forget gate's bias starts at 1, as Keras' unit_forget_bias does, so that early in
    training the cell keeps what it holds rather than halving it every step.
    """

    def __init__(self, input_size: int, hidden_size: int = 64, output_size: int = 2, *,
                 return_sequences: bool = False, dtype: Any = np.float64, seed: int = 0,
                 init_scale: float = 1e-3) -> None:
        self.dtype = np.dtype(dtype)
        self.return_sequences = return_sequences
        self.rng = np.random.default_rng(seed)

        def draw(*shape: int) -> np.ndarray:
            return (self.rng.standard_normal(shape) * init_scale).astype(self.dtype)

        bias = np.zeros(4 * hidden_size, dtype=self.dtype)
        bias[hidden_size:2 * hidden_size] = 1.0
        self.params: Params = {
            "W_x": draw(input_size, 4 * hidden_size),
            "W_h": draw(hidden_size, 4 * hidden_size),
            "b": bias,
            "W_hy": draw(hidden_size, output_size),
            "b_y": np.zeros(output_size, dtype=self.dtype),
        }

    def forward(self, x: np.ndarray, mask: Optional[np.ndarray] = None, h0: Optional[np.ndarray] = None,
                c0: Optional[np.ndarray] = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Logits, and the cache backward needs. `h0` and `c0` (batch, hidden) are the state
        before the first step, zeros by default."""
        p = self.params
        x = np.asarray(x, dtype=self.dtype)
        batch, steps, _ = x.shape
        hidden = p["W_h"].shape[0]
        m = None if mask is None else np.asarray(mask, dtype=self.dtype)[:, :, None]
        # [:, t + 1] holds step t's state and [:, 0] the initial one.
        hs = np.empty((batch, steps + 1, hidden), dtype=self.dtype)
        cs = np.empty((batch, steps + 1, hidden), dtype=self.dtype)
        hs[:, 0] = 0.0 if h0 is None else h0
        cs[:, 0] = 0.0 if c0 is None else c0
        gates = np.empty((batch, steps, 4 * hidden), dtype=self.dtype)
        xw = (flat_steps(x) @ p["W_x"] + p["b"]).reshape(batch, steps, 4 * hidden)
        for t in range(steps):
            h_prev, c_prev = hs[:, t], cs[:, t]
            z = xw[:, t] + h_prev @ p["W_h"]
            act = gates[:, t]
            act[:, :2 * hidden] = sigmoid(z[:, :2 * hidden])
            act[:, 2 * hidden:3 * hidden] = tanh(z[:, 2 * hidden:3 * hidden])
            act[:, 3 * hidden:] = sigmoid(z[:, 3 * hidden:])
            i, f, g, o = _split(act, hidden)
            c = f * c_prev + i * g
            h = o * tanh(c)
            if m is not None:
                c = c_prev + m[:, t] * (c - c_prev)
                h = h_prev + m[:, t] * (h - h_prev)
            hs[:, t + 1], cs[:, t + 1] = h, c
        states = hs[:, 1:] if self.return_sequences else hs[:, -1]
        logits = states @ p["W_hy"] + p["b_y"]
        return logits, {"x": x, "m": m, "hs": hs, "cs": cs, "gates": gates}

    def backward(self, cache: dict[str, Any], dlogits: np.ndarray) -> Params:
        """Gradients by backpropagation through time, for every parameter, and also:

            "x"   dL/dx_t   (batch, time, features)
            "h"   dL/dh_t   (batch, time, hidden), everything that reaches h_t: from its own
                            output and through step t + 1 (c_t held as a separate input)
            "h0"  dL/dh_0 and "c0" dL/dc_0   (batch, hidden)
        """
        p = self.params
        x, m, hs, cs, gates = cache["x"], cache["m"], cache["hs"], cache["cs"], cache["gates"]
        batch, steps, _ = x.shape
        hidden = hs.shape[-1]
        grads: Params = {}
        states = hs[:, 1:] if self.return_sequences else hs[:, -1]
        grads["W_hy"] = flat_steps(states).T @ flat_steps(dlogits)
        grads["b_y"] = flat_steps(dlogits).sum(axis=0)
        from_output = dlogits @ p["W_hy"].T
        # Everything in a step's local derivatives that does not wait for dL/dh_t, for all
        # steps at once: with dc the gradient reaching the new cell and dh the one reaching h,
        #   dz = [dc * g * i(1-i), dc * c_{t-1} * f(1-f), dc * i * (1-g^2), dh * tanh(c_t) * o(1-o)]
        #   dc = dc_from_t+1 + dh * o * (1 - tanh(c_t)^2)
        # On a padded step nothing reaches the new cell or h (m = 0) and both dL/dh_t and
        # dL/dc_t go straight back to step t - 1 through the carry.
        i, f, g, o = _split(gates, hidden)
        tanh_c = tanh(cs[:, 1:])
        local = np.concatenate([g * i * (1.0 - i), cs[:, :-1] * f * (1.0 - f), i * (1.0 - g ** 2),
                                tanh_c * o * (1.0 - o)], axis=-1)
        c_from_h = o * (1.0 - tanh_c ** 2)
        if m is not None:
            # dc below carries the mask already; only the output gate's block needs it here.
            local[..., 3 * hidden:] *= m
            c_from_h *= m
            carry = 1.0 - m
        dh_all = np.empty((batch, steps, hidden), dtype=self.dtype)
        dz_all = np.empty((batch, steps, 4 * hidden), dtype=self.dtype)
        dh_next = np.zeros((batch, hidden), dtype=self.dtype)
        dc_next = np.zeros((batch, hidden), dtype=self.dtype)
        for t in reversed(range(steps)):
            if self.return_sequences:
                dh = from_output[:, t] + dh_next
            else:
                dh = from_output + dh_next if t == steps - 1 else dh_next
            dh_all[:, t] = dh
            if m is None:
                dc = dc_next + dh * c_from_h[:, t]
            else:
                dc = dc_next * m[:, t] + dh * c_from_h[:, t]
            dz = dz_all[:, t]
            np.multiply(np.concatenate([dc, dc, dc, dh], axis=1), local[:, t], out=dz)
            dh_next = dz @ p["W_h"].T
            if m is None:
                dc_next = dc * f[:, t]
            else:
                dh_next += carry[:, t] * dh
                dc_next = dc * f[:, t] + carry[:, t] * dc_next
        grads["W_x"] = flat_steps(x).T @ flat_steps(dz_all)
        grads["W_h"] = flat_steps(hs[:, :-1]).T @ flat_steps(dz_all)
        grads["b"] = flat_steps(dz_all).sum(axis=0)
        grads["x"] = (flat_steps(dz_all) @ p["W_x"].T).reshape(x.shape)
        grads["h"] = dh_all
        grads["h0"] = dh_next
        grads["c0"] = dc_next
        return grads


def _split(a: np.ndarray, hidden: int) -> tuple[np.ndarray, ...]:
    """The i, f, c, o blocks of the last axis, as views."""
    return tuple(a[..., k * hidden:(k + 1) * hidden] for k in range(4))

