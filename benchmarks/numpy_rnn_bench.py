"""The batched NumPy RNN against the course's one-phrase-at-a-time loop, side by side.

    PYTHONPATH=src python benchmarks/numpy_rnn_bench.py [--epochs 1000] [--language en]

Every row trains on the same phrases (rnnlab.data.sources.phrases, English by default)
with hidden 64, weights randn / 1000, gradients clipped to [-1, 1], for the same number
of epochs (the course's 1000). After every epoch, outside the timed part, the training
accuracy of the whole set is measured with the weights as they are, so "epochs to 100%"
means the same for every row. Reported per row:

    time/epoch        median wall time of one training pass over the set
    epochs to 100%    first epoch after which every training phrase is classified right
    time to 100%      the training time of those epochs, summed
    train, test acc   after the last epoch

Rows (every RNN row starts from the same initial weights, the course's draw for the seed):
    course loop as written     CourseRNN below: the course's method re-implemented, one phrase
                               at a time, column vectors, a dict of hidden states per step, SGD
    course loop, W_hh.T fixed  the same with the course's one transposition in BPTT fixed
                               (see CourseRNN); the baseline of the speed-ups, as it reaches 100%
    NumpyRNN, batch 1, SGD     the fixed course algorithm through rnnlab.models.numpy_rnn: one
                               update per phrase, phrases in the course's order; the difference
                               to the row above is implementation only
    NumpyRNN, full batch, Adam all phrases in one batch, one Adam update (lr 2e-2) per epoch
    ..., float32               the same in single precision
    NumpyLSTM, full batch, Adam the LSTM the same way (its own seeded weights), for reference

BLAS runs on one thread for every row: the matrices are small, and on a shared machine
extra BLAS threads only wait for each other (which would penalise the batched rows).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from rnnlab.data.sources import phrases
from rnnlab.models.numpy_common import SGD, Adam
from rnnlab.models.numpy_lstm import NumpyLSTM
from rnnlab.models.numpy_rnn import NumpyRNN

HIDDEN, LEARNING_RATE, CLIP, INIT_SCALE = 64, 2e-2, 1.0, 1e-3


class CourseRNN:
    """The course's RNN as the course writes it: one phrase at a time, column vectors,
    hidden states kept in a dict per step, backpropagation through time with an
    elementwise clip and a plain SGD step right after every phrase.

    Only the random source differs: a seeded numpy Generator instead of the global
    np.random and random.shuffle, so that the benchmark repeats.

    One line of the course is not the chain rule: it passes the gradient back a step as
    W_hh @ temp, where h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h) gives W_hh.T @ temp. With
    weights near randn / 1000 the two differ little and training still works. This class
    keeps the course's line; exact_gradient=True applies the one fix (used to show that
    NumpyRNN, whose gradient the finite-difference test checks, is otherwise the same).
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int, rng: np.random.Generator,
                 exact_gradient: bool = False) -> None:
        self.exact_gradient = exact_gradient
        self.Whh = rng.standard_normal((hidden_size, hidden_size)) * INIT_SCALE
        self.Wxh = rng.standard_normal((hidden_size, input_size)) * INIT_SCALE
        self.Why = rng.standard_normal((output_size, hidden_size)) * INIT_SCALE
        self.bh = np.zeros((hidden_size, 1))
        self.by = np.zeros((output_size, 1))

    def forward(self, inputs: list[np.ndarray]) -> np.ndarray:
        h = np.zeros((self.Whh.shape[0], 1))
        self.last_inputs = inputs
        self.last_hs = {0: h}
        for i, x in enumerate(inputs):
            h = np.tanh(self.Wxh @ x + self.Whh @ h + self.bh)
            self.last_hs[i + 1] = h
        return self.Why @ h + self.by

    def backprop(self, d_y: np.ndarray, learn_rate: float = LEARNING_RATE) -> None:
        n = len(self.last_inputs)
        d_Why = d_y @ self.last_hs[n].T
        d_by = d_y
        d_Whh = np.zeros(self.Whh.shape)
        d_Wxh = np.zeros(self.Wxh.shape)
        d_bh = np.zeros(self.bh.shape)
        d_h = self.Why.T @ d_y
        for t in reversed(range(n)):
            temp = (1 - self.last_hs[t + 1] ** 2) * d_h
            d_bh += temp
            d_Whh += temp @ self.last_hs[t].T
            d_Wxh += temp @ self.last_inputs[t].T
            d_h = (self.Whh.T if self.exact_gradient else self.Whh) @ temp
        for d in (d_Wxh, d_Whh, d_Why, d_bh, d_by):
            np.clip(d, -CLIP, CLIP, out=d)
        self.Whh -= learn_rate * d_Whh
        self.Wxh -= learn_rate * d_Wxh
        self.Why -= learn_rate * d_Why
        self.bh -= learn_rate * d_bh
        self.by -= learn_rate * d_by


def course_inputs(text: str, vocabulary: dict[str, int]) -> list[np.ndarray]:
    """The course's createInputs: one (vocabulary, 1) one-hot column per word."""
    inputs = []
    for word in phrases.tokenize(text):
        v = np.zeros((len(vocabulary), 1))
        v[vocabulary.get(word, vocabulary[phrases.UNKNOWN])] = 1
        inputs.append(v)
    return inputs


def course_softmax(xs: np.ndarray) -> np.ndarray:
    return np.exp(xs) / np.sum(np.exp(xs))


def course_epoch(rnn: CourseRNN, data: list[tuple[list[np.ndarray], int]], rng: np.random.Generator,
                 backprop: bool = True) -> tuple[float, float]:
    """The course's processData: shuffle, then forward, loss and (optionally) backprop per phrase."""
    order = rng.permutation(len(data)) if backprop else range(len(data))
    loss, correct = 0.0, 0
    for k in order:
        inputs, target = data[k]
        probs = course_softmax(rnn.forward(inputs))
        loss -= float(np.log(probs[target, 0]))
        correct += int(np.argmax(probs) == target)
        if backprop:
            d_y = probs
            d_y[target] -= 1
            rnn.backprop(d_y)
    return loss / len(data), correct / len(data)


def course_start(vocabulary_size: int, seed: int, exact_gradient: bool = False) -> tuple[CourseRNN, np.random.Generator]:
    """The course's RNN and the generator that drew its weights, which then shuffles its epochs."""
    rng = np.random.default_rng(seed)
    return CourseRNN(vocabulary_size, 2, HIDDEN, rng, exact_gradient), rng


def as_numpy_rnn(course: CourseRNN, dtype: type = np.float64) -> NumpyRNN:
    """A NumpyRNN holding the course RNN's weights. The course keeps column vectors (W @ x);
    NumpyRNN keeps Keras' layout (x @ W), hence the transposes."""
    model = NumpyRNN(course.Wxh.shape[1], HIDDEN, dtype=dtype)
    for name, value in [("W_xh", course.Wxh.T), ("W_hh", course.Whh.T), ("b_h", course.bh[:, 0]),
                        ("W_hy", course.Why.T), ("b_y", course.by[:, 0])]:
        model.params[name] = value.astype(dtype)
    return model


def course_equivalence(exact_gradient: bool, language: str = "en", seed: int = 0) -> float:
    """Largest weight difference after one epoch of the course loop and one of NumpyRNN with
    batch 1 and SGD, from the same initial weights, over the phrases in the same order.

    With exact_gradient (the course's one transposition fixed) it is rounding, about 1e-16:
    NumpyRNN run one phrase at a time is the course's algorithm, so rows that share the
    algorithm differ in implementation only. Without, it is the transposition's effect,
    small at the course's initial weights.
    """
    data = phrase_data(language)
    course, rng = course_start(data["vocabulary_size"], seed, exact_gradient)
    model = as_numpy_rnn(course)
    order = copy.deepcopy(rng).permutation(len(data["x"]))
    course_epoch(course, data["course_train"], rng)
    model.fit(data["x"][order], data["y"][order], data["mask"][order],
              optimizer=SGD(LEARNING_RATE, clip_value=CLIP), batch_size=1, shuffle=False)
    return max(float(np.abs(theirs - model.params[name]).max()) for name, theirs in as_numpy_rnn(course).params.items())


def phrase_data(language: str) -> dict:
    """The phrases both ways: batched one-hot arrays with masks, and the course's lists of columns."""
    sample = phrases.from_sample(language)
    vocabulary = phrases.build_vocabulary(sample.train_texts)
    x, mask = phrases.one_hot_sequences(sample.train_texts, vocabulary)
    x_test, mask_test = phrases.one_hot_sequences(sample.test_texts, vocabulary, maxlen=x.shape[1])
    return {
        "vocabulary_size": len(vocabulary),
        "x": x, "y": sample.train_labels, "mask": mask,
        "x_test": x_test, "y_test": sample.test_labels, "mask_test": mask_test,
        "course_train": [(course_inputs(t, vocabulary), int(y)) for t, y in zip(sample.train_texts, sample.train_labels)],
        "course_test": [(course_inputs(t, vocabulary), int(y)) for t, y in zip(sample.test_texts, sample.test_labels)],
    }


@dataclass
class Row:
    name: str
    updates_per_epoch: int
    epoch_seconds: list[float]
    train_accuracy: list[float]
    test_accuracy: float

    def epochs_to_full(self) -> int | None:
        return next((k + 1 for k, acc in enumerate(self.train_accuracy) if acc == 1.0), None)

    def seconds_to_full(self) -> float | None:
        epochs = self.epochs_to_full()
        return None if epochs is None else sum(self.epoch_seconds[:epochs])


def run_course(name: str, data: dict, epochs: int, seed: int, exact_gradient: bool) -> Row:
    rnn, rng = course_start(data["vocabulary_size"], seed, exact_gradient)
    seconds, accuracy = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        course_epoch(rnn, data["course_train"], rng)
        seconds.append(time.perf_counter() - start)
        accuracy.append(course_epoch(rnn, data["course_train"], rng, backprop=False)[1])
    return Row(name, len(data["x"]), seconds, accuracy, course_epoch(rnn, data["course_test"], rng, backprop=False)[1])


def run_batched(name: str, model: NumpyRNN | NumpyLSTM, optimizer: SGD | Adam, batch_size: int, data: dict,
                epochs: int, rng: np.random.Generator | None = None) -> Row:
    """Train epoch by epoch. With `rng`, each epoch takes the phrases in rng.permutation order,
    as course_epoch does with the same generator; without, in the stored order (a full batch
    makes one update per epoch, and the order changes only rounding)."""
    n = len(data["x"])
    seconds, accuracy = [], []
    for _ in range(epochs):
        order = np.arange(n) if rng is None else rng.permutation(n)
        x, y, mask = data["x"][order], data["y"][order], data["mask"][order]
        start = time.perf_counter()
        model.fit(x, y, mask, optimizer=optimizer, batch_size=batch_size, shuffle=False)
        seconds.append(time.perf_counter() - start)
        accuracy.append(model.evaluate(data["x"], data["y"], data["mask"])[1])
    test_accuracy = model.evaluate(data["x_test"], data["y_test"], data["mask_test"])[1]
    return Row(name, -(-n // batch_size), seconds, accuracy, test_accuracy)


def markdown_table(rows: list[Row], base: Row) -> str:
    """Speed-ups are against `base`, the course loop that reaches 100%."""
    base_epoch, base_full = statistics.median(base.epoch_seconds), base.seconds_to_full()
    lines = ["| implementation | updates/epoch | time/epoch | speed-up per epoch | epochs to 100% train | "
             "time to 100% train | speed-up to 100% train | train acc | test acc |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        per_epoch, to_full = statistics.median(row.epoch_seconds), row.seconds_to_full()
        reached = to_full is not None and base_full is not None
        lines.append(
            f"| {row.name} | {row.updates_per_epoch} | {per_epoch * 1e3:.2f} ms | {base_epoch / per_epoch:.1f}x | "
            f"{row.epochs_to_full() or 'not in ' + str(len(row.epoch_seconds))} | "
            f"{f'{to_full:.2f} s' if to_full is not None else '-'} | {f'{base_full / to_full:.0f}x' if reached else '-'} | "
            f"{row.train_accuracy[-1]:.3f} | {row.test_accuracy:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000, help="epochs for every row (the course: 1000)")
    parser.add_argument("--language", default="en", choices=phrases.LANGUAGES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = phrase_data(args.language)
    print(f"{len(data['x'])} training and {len(data['x_test'])} test phrases ({args.language}), vocabulary "
          f"{data['vocabulary_size']}, {args.epochs} epochs per row, seed {args.seed}", file=sys.stderr)

    n, v, epochs, seed = len(data["x"]), data["vocabulary_size"], args.epochs, args.seed
    rows = []

    def add(row: Row) -> None:
        rows.append(row)
        print(f"  {row.name}: done", file=sys.stderr)

    with threadpool_limits(limits=1, user_api="blas"):
        add(run_course("course loop as written", data, epochs, seed, exact_gradient=False))
        add(run_course("course loop, W_hh.T fixed", data, epochs, seed, exact_gradient=True))
        # Every RNN row starts from the course's initial weights for this seed; the batch-1
        # row also takes the phrases in the course's order, epoch by epoch.
        course, rng = course_start(v, seed)
        add(run_batched("NumpyRNN, batch 1, SGD", as_numpy_rnn(course), SGD(LEARNING_RATE, clip_value=CLIP), 1,
                        data, epochs, rng))
        for name, dtype in [("NumpyRNN, full batch, Adam", np.float64), ("NumpyRNN, full batch, Adam, float32", np.float32)]:
            course, _ = course_start(v, seed)
            add(run_batched(name, as_numpy_rnn(course, dtype), Adam(LEARNING_RATE, clip_value=CLIP), n, data, epochs))
        add(run_batched("NumpyLSTM, full batch, Adam", NumpyLSTM(v, HIDDEN, seed=seed),
                        Adam(LEARNING_RATE, clip_value=CLIP), n, data, epochs))
        exact = course_equivalence(True, args.language, args.seed)
        as_written = course_equivalence(False, args.language, args.seed)
    print(markdown_table(rows, base=rows[1]))
    print(f"\nOne epoch from the same weights in the same order: NumpyRNN (batch 1, SGD) and the course loop "
          f"differ by at most {exact:.1e} in any weight with W_hh.T fixed, {as_written:.1e} as written.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
