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
carried over unchanged, so padding on either side gives the unpadded result, and padded
steps are skipped the RNN's way (numpy_rnn.step_layout): with padding all at the front or
all at the back, step t runs on the k_t real rows of the batch sorted longest first.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from rnnlab.models.numpy_common import Params, RecurrentClassifier, flat_steps, sigmoid, tanh
from rnnlab.models.numpy_rnn import step_layout


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
        layout = step_layout(mask, batch, steps, self.dtype)
        # [:, t + 1] holds step t's state and [:, 0] the initial one, rows in the steps' order.
        hs = np.empty((batch, steps + 1, hidden), dtype=self.dtype)
        cs = np.empty((batch, steps + 1, hidden), dtype=self.dtype)
        hs[:, 0] = 0.0 if h0 is None else layout.sort(np.asarray(h0, dtype=self.dtype))
        cs[:, 0] = 0.0 if c0 is None else layout.sort(np.asarray(c0, dtype=self.dtype))
        # Gate activations and the inputs' share of the gates, for the computed steps only (packed).
        x_packed = flat_steps(x)[layout.caller_index]
        xw = x_packed @ p["W_x"] + p["b"]
        gates = np.empty_like(xw)
        for t, (k, start) in enumerate(zip(layout.active, layout.offsets)):
            h_prev, c_prev = hs[:k, t], cs[:k, t]
            z = xw[start:start + k] + h_prev @ p["W_h"]
            act = gates[start:start + k]
            act[:, :2 * hidden] = sigmoid(z[:, :2 * hidden])
            act[:, 2 * hidden:3 * hidden] = tanh(z[:, 2 * hidden:3 * hidden])
            act[:, 3 * hidden:] = sigmoid(z[:, 3 * hidden:])
            i, f, g, o = _split(act, hidden)
            c = f * c_prev + i * g
            h = o * tanh(c)
            if layout.blend is not None:
                m = layout.blend[start:start + k]
                c = c_prev + m * (c - c_prev)
                h = h_prev + m * (h - h_prev)
            hs[:k, t + 1], cs[:k, t + 1] = h, c
            if k < batch:  # rows not computed at this step carry their state
                hs[k:, t + 1], cs[k:, t + 1] = hs[k:, t], cs[k:, t]
        states = layout.unsort(hs)
        logits = (states[:, 1:] if self.return_sequences else states[:, -1]) @ p["W_hy"] + p["b_y"]
        return logits, {"x": x, "x_packed": x_packed, "hs": states, "cs": layout.unsort(cs), "sorted_hs": hs,
                        "sorted_cs": cs, "gates": gates, "layout": layout}

    def backward(self, cache: dict[str, Any], dlogits: np.ndarray) -> Params:
        """Gradients by backpropagation through time, for every parameter, and also:

            "x"   dL/dx_t   (batch, time, features)
            "h"   dL/dh_t   (batch, time, hidden), everything that reaches h_t: from its own
                            output and through step t + 1 (c_t held as a separate input)
            "h0"  dL/dh_0 and "c0" dL/dc_0   (batch, hidden)
        """
        p = self.params
        x, hs, cs, gates, layout = cache["x"], cache["sorted_hs"], cache["sorted_cs"], cache["gates"], cache["layout"]
        batch, steps, features = x.shape
        hidden = hs.shape[-1]
        grads: Params = {}
        states = cache["hs"][:, 1:] if self.return_sequences else cache["hs"][:, -1]
        grads["W_hy"] = flat_steps(states).T @ flat_steps(dlogits)
        grads["b_y"] = flat_steps(dlogits).sum(axis=0)
        from_output = layout.sort(dlogits) @ p["W_hy"].T
        # Everything in a step's local derivatives that does not wait for dL/dh_t, for every
        # computed step at once: with dc the gradient reaching the new cell and dh the one reaching h,
        #   dz = [dc * g * i(1-i), dc * c_{t-1} * f(1-f), dc * i * (1-g^2), dh * tanh(c_t) * o(1-o)]
        #   dc = dc_from_t+1 + dh * o * (1 - tanh(c_t)^2)
        # Blended with a mask, on a padded step nothing reaches the new cell or h (m = 0) and
        # both dL/dh_t and dL/dc_t go straight back to step t - 1 through the carry, as they
        # do for the rows a step does not compute.
        i, f, g, o = _split(gates, hidden)
        tanh_c = tanh(layout.packed(cs, shift=1))
        local = np.concatenate([g * i * (1.0 - i), layout.packed(cs) * f * (1.0 - f), i * (1.0 - g ** 2),
                                tanh_c * o * (1.0 - o)], axis=-1)
        c_from_h = o * (1.0 - tanh_c ** 2)
        if layout.blend is not None:
            # dc below carries the mask already; only the output gate's block needs it here.
            local[:, 3 * hidden:] *= layout.blend
            c_from_h *= layout.blend
        # dh_all[:, t] is dL/dh_t, rows in the steps' order; dz[j] is dL/dz at packed entry j.
        dh_all = np.empty((batch, steps, hidden), dtype=self.dtype)
        dh_all[:, -1] = from_output[:, -1] if self.return_sequences else from_output
        dh0 = np.empty((batch, hidden), dtype=self.dtype)
        dz = np.empty_like(local)
        dc_next = np.zeros((batch, hidden), dtype=self.dtype)
        W_h_T = p["W_h"].T
        for t in reversed(range(steps)):
            k, start = layout.active[t], layout.offsets[t]
            dh = dh_all[:, t]
            if layout.blend is None:
                dc = dc_next[:k] + dh[:k] * c_from_h[start:start + k]
            else:
                dc = dc_next * layout.blend[start:start + k] + dh * c_from_h[start:start + k]
            dz_t = np.multiply(np.concatenate([dc, dc, dc, dh[:k]], axis=1), local[start:start + k],
                               out=dz[start:start + k])
            dh_prev = dh_all[:, t - 1] if t > 0 else dh0
            np.matmul(dz_t, W_h_T, out=dh_prev[:k])
            if k < batch:
                dh_prev[k:] = dh[k:]
            if layout.blend is None:
                dc_next[:k] = dc * f[start:start + k]  # rows not computed keep theirs (carry)
            else:
                carry = 1.0 - layout.blend[start:start + k]
                dh_prev += carry * dh
                dc_next = dc * f[start:start + k] + carry * dc_next
            if self.return_sequences and t > 0:
                dh_prev += from_output[:, t - 1]
        grads["W_x"] = cache["x_packed"].T @ dz
        grads["W_h"] = layout.packed(hs).T @ dz
        grads["b"] = dz.sum(axis=0)
        # Steps not computed are padding, whose input reaches nothing: dL/dx is zero there.
        dx = np.zeros((batch * steps, features), dtype=self.dtype)
        dx[layout.caller_index] = dz @ p["W_x"].T
        grads["x"] = dx.reshape(x.shape)
        grads["h"] = layout.unsort(dh_all)
        grads["h0"] = layout.unsort(dh0)
        grads["c0"] = layout.unsort(dc_next)
        return grads


def _split(a: np.ndarray, hidden: int) -> tuple[np.ndarray, ...]:
    """The i, f, c, o blocks of the last axis, as views."""
    return tuple(a[..., k * hidden:(k + 1) * hidden] for k in range(4))

