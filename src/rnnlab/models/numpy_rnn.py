"""An Elman RNN from scratch in NumPy: forward, full backpropagation through time, training.

    h_t = tanh(x_t @ W_xh + h_{t-1} @ W_hh + b_h)
    y   = h_T @ W_hy + b_y                    many-to-one (the course's sentiment RNN)
    y_t = h_t @ W_hy + b_y                    many-to-many (return_sequences=True)

This is the course's RNN (one phrase at a time, hidden states in a dict per step) made to
run on a whole batch at once: the time loop stays, since h_t needs h_{t-1}, but each
step handles every sequence with one matrix product, and the weight gradients, summed
over all steps in the course's loop, become one product over the stacked steps after it.
For that, each computed step's [1, x_t, h_{t-1}] is kept in one packed array, and the
weights stacked as [b_h; W_xh; W_hh] make both the step and the gradients one product.

Variable lengths: a mask (batch, time) marks real steps, and on a padded step the state
is carried over unchanged, h_t = h_{t-1} (what Keras does with a mask). So padding at the
front leaves the state at h_0 until the phrase begins, padding at the back carries the
final state to the last step, and in both cases h_T is the state after the phrase's last
word and the result equals the unpadded one (tested). The phrases helper pads at the
front, like keras' IMDB; the carry makes either side safe.

Padded steps are skipped (the idea of PyTorch's packed sequences): when the padding is
all at the front or all at the back, the rows sorted longest first have step t's real
steps in their first k_t rows, so step t multiplies and takes tanh of those k_t rows only
and the others copy their state. On the English phrases 43% of the padded batch's steps
are padding. Any other mask takes every row at every step and blends with the mask.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from rnnlab.models.numpy_common import Params, RecurrentClassifier, flat_steps


@dataclass
class StepLayout:
    """Which rows every time step computes, and where they sit in the packed arrays.

    The steps run on the batch with its rows in `order` (None: as given). Step t computes
    rows [:active[t]] and the other rows carry their state. What the steps compute is also
    kept "packed", step after step without the skipped rows: entry j is row rows[j] (of the
    sorted batch) at step times[j], and step t's entries are [offsets[t], offsets[t] + active[t]).
    caller_index[j] is entry j's index in a (batch * time) array with the caller's rows.
    `blend` is None when the computed steps are exactly the real ones; otherwise every row is
    computed at every step and blend holds the mask at each packed entry, (entries, 1).
    """

    order: Optional[np.ndarray]
    inverse: Optional[np.ndarray]
    active: list[int]
    offsets: list[int]
    rows: np.ndarray
    times: np.ndarray
    caller_index: np.ndarray
    blend: Optional[np.ndarray]

    def sort(self, a: np.ndarray) -> np.ndarray:
        """The caller's rows -> the steps' order."""
        return a if self.order is None else a[self.order]

    def unsort(self, a: np.ndarray) -> np.ndarray:
        """The steps' order -> the caller's rows."""
        return a if self.inverse is None else a[self.inverse]

    def packed(self, a: np.ndarray, shift: int = 0) -> np.ndarray:
        """The packed entries of `a` (batch, time + extra, n), rows in the steps' order, at step
        times + shift: shift=1 on the states array picks h_t, where [:, t + 1] holds step t."""
        return flat_steps(a)[self.rows * a.shape[1] + self.times + shift]


def step_layout(mask: Optional[np.ndarray], batch: int, steps: int, dtype: np.dtype) -> StepLayout:
    """The StepLayout for `mask` (batch, time), or for no mask.

    If every step's set of real rows contains or is contained in every other step's (padding
    all at the front, or all at the back), a row real at a step is real at every step where
    a shorter row is, so with the rows sorted longest first each step's real rows are a
    prefix. Any other mask, or one with values other than 0 and 1, falls back to computing
    every row at every step and blending with the mask, as a general mask needs.
    """
    order = inverse = blend = None
    if mask is None:
        active = [batch] * steps
        prefix = np.ones((batch, steps), dtype=bool)
    else:
        m = np.asarray(mask, dtype=dtype)
        order = np.argsort(-m.sum(axis=1), kind="stable")
        sorted_mask = m[order]
        prefix_sizes = sorted_mask.sum(axis=0).astype(np.intp)
        prefix = np.arange(batch)[:, None] < prefix_sizes
        if (sorted_mask == prefix).all():
            active = prefix_sizes.tolist()
            inverse = np.argsort(order)
        else:
            order, blend, active = None, m, [batch] * steps
            prefix = np.ones((batch, steps), dtype=bool)
    times, rows = np.nonzero(prefix.T)  # step by step, rows in order
    caller_rows = rows if order is None else order[rows]
    layout = StepLayout(order, inverse, active, [0, *itertools.accumulate(active[:-1])], rows, times,
                        caller_rows * steps + times, None)
    if blend is not None:
        layout.blend = layout.packed(blend[:, :, None])
    return layout


def tanh_of_scaled(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """tanh(a) from z = -2a, as numpy_common.tanh computes it, 2 / (1 + exp(-2a)) - 1, bit for
    bit, in place in z and written to `out` (which may be z): a step's tanh then allocates
    nothing, and a caller that multiplies its weights by -2 (exact in binary floating point)
    gets z from its matrix product directly. The caller silences the overflow of exp for a
    below about -354 (the result is the right limit, -1)."""
    np.exp(z, out=z)
    np.add(z, 1.0, out=z)
    np.divide(2.0, z, out=out)
    return np.subtract(out, 1.0, out=out)


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
        batch, steps, features = x.shape
        hidden = p["W_hh"].shape[0]
        layout = step_layout(mask, batch, steps, self.dtype)
        # hs[:, t + 1] is h_t and hs[:, 0] is h_0 (the course's last_hs dict as one array),
        # rows in the steps' order.
        hs = np.empty((batch, steps + 1, hidden), dtype=self.dtype)
        hs[:, 0] = 0.0 if h0 is None else layout.sort(np.asarray(h0, dtype=self.dtype))
        # Every computed step's whole input, [1, x_t, h_{t-1}], packed, times one stacked
        # matrix [b_h; W_xh; W_hh]: one product per step, and after BPTT one product gives
        # all three gradients, where separate products per weight cost more on matrices this small.
        inputs = np.empty((len(layout.rows), 1 + features + hidden), dtype=self.dtype)
        inputs[:, 0] = 1.0
        inputs[:, 1:1 + features] = flat_steps(x)[layout.caller_index]
        # times -2, which tanh_of_scaled takes: exact, and one operation per step fewer
        weights = np.concatenate([p["b_h"][None], p["W_xh"], p["W_hh"]]) * -2.0
        scratch = np.empty((batch, hidden), dtype=self.dtype)
        with np.errstate(over="ignore"):
            for t, (k, start) in enumerate(zip(layout.active, layout.offsets)):
                h_prev, step_inputs = hs[:k, t], inputs[start:start + k]
                step_inputs[:, 1 + features:] = h_prev
                z = np.matmul(step_inputs, weights, out=scratch[:k])
                if layout.blend is None:
                    tanh_of_scaled(z, out=hs[:k, t + 1])
                else:
                    # h_prev + m * (tanh(a) - h_prev): the mask's share of a new state.
                    a = tanh_of_scaled(z, out=z)
                    a -= h_prev
                    a *= layout.blend[start:start + k]
                    np.add(h_prev, a, out=hs[:k, t + 1])
                if k < batch:
                    hs[k:, t + 1] = hs[k:, t]  # rows not computed at this step carry their state
        states = layout.unsort(hs)
        logits = (states[:, 1:] if self.return_sequences else states[:, -1]) @ p["W_hy"] + p["b_y"]
        return logits, {"x": x, "inputs": inputs, "hs": states, "sorted_hs": hs, "layout": layout}

    def backward(self, cache: dict[str, Any], dlogits: np.ndarray) -> Params:
        """Gradients by backpropagation through time, for every parameter, and also:

            "x"   dL/dx_t   (batch, time, features)
            "h"   dL/dh_t   (batch, time, hidden), everything that reaches h_t: from its own
                            output and through h_{t+1}; its norm per t is what a study of
                            vanishing and exploding gradients plots
            "h0"  dL/dh_0   (batch, hidden)
        """
        p = self.params
        x, hs, layout = cache["x"], cache["sorted_hs"], cache["layout"]
        batch, steps, features = x.shape
        hidden = hs.shape[-1]
        grads: Params = {}
        states = cache["hs"][:, 1:] if self.return_sequences else cache["hs"][:, -1]
        grads["W_hy"] = flat_steps(states).T @ flat_steps(dlogits)
        grads["b_y"] = flat_steps(dlogits).sum(axis=0)
        from_output = layout.sort(dlogits) @ p["W_hy"].T
        # dh_t/da_t = 1 - h_t^2 (tanh'), for every computed step at once. Blended with a mask,
        # a padded step puts nothing into a new state (m = 0) and all of dL/dh_t goes straight
        # back to h_{t-1} (carry), as it does for the rows a step does not compute.
        tanh_grad = layout.packed(hs, shift=1)
        np.square(tanh_grad, out=tanh_grad)
        np.subtract(1.0, tanh_grad, out=tanh_grad)
        if layout.blend is not None:
            tanh_grad *= layout.blend
        # dh_all[:, t] is dL/dh_t, rows in the steps' order; da[j] is dL/da at packed entry j.
        dh_all = np.empty((batch, steps, hidden), dtype=self.dtype)
        dh_all[:, -1] = from_output[:, -1] if self.return_sequences else from_output
        dh0 = np.empty((batch, hidden), dtype=self.dtype)
        da = np.empty((len(tanh_grad), hidden), dtype=self.dtype)
        W_hh_T = p["W_hh"].T
        for t in reversed(range(steps)):
            k, start = layout.active[t], layout.offsets[t]
            dh = dh_all[:, t]
            da_t = np.multiply(dh[:k], tanh_grad[start:start + k], out=da[start:start + k])
            dh_prev = dh_all[:, t - 1] if t > 0 else dh0
            np.matmul(da_t, W_hh_T, out=dh_prev[:k])
            if k < batch:
                dh_prev[k:] = dh[k:]
            if layout.blend is not None:
                dh_prev += (1.0 - layout.blend[start:start + k]) * dh
            if self.return_sequences and t > 0:
                dh_prev += from_output[:, t - 1]
        stacked = cache["inputs"].T @ da  # the gradient of [b_h; W_xh; W_hh]
        grads["b_h"], grads["W_xh"], grads["W_hh"] = stacked[0], stacked[1:1 + features], stacked[1 + features:]
        # Steps not computed are padding, whose input reaches nothing: dL/dx is zero there.
        dx = np.zeros((batch * steps, features), dtype=self.dtype)
        dx[layout.caller_index] = da @ p["W_xh"].T
        grads["x"] = dx.reshape(x.shape)
        grads["h"] = layout.unsort(dh_all)
        grads["h0"] = layout.unsort(dh0)
        return grads
