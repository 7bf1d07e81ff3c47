"""Simple baselines, fit and scored on the same split as the models they stand beside."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

# Token ids 0 (padding) and 1 (review start) carry no words.
_RESERVED_IDS = 2


def bag_of_words(ids: np.ndarray, vocabulary_size: int) -> sparse.csr_matrix:
    """Counts of each word per row: word order thrown away.

    `ids` are token ids (rows, time), or one-hot words (rows, time, vocabulary).
    """
    if ids.ndim == 3:
        return sparse.csr_matrix(ids.sum(axis=1))
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    cols = ids.ravel()
    keep = cols >= _RESERVED_IDS
    data = np.ones(int(keep.sum()), dtype=np.float32)
    return sparse.csr_matrix((data, (rows[keep], cols[keep])), shape=(ids.shape[0], vocabulary_size))


def bag_of_words_logistic_regression(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                                     vocabulary_size: int, seed: int = 0) -> np.ndarray:
    """P(positive) for each test row from a logistic regression on word counts."""
    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit(bag_of_words(x_train, vocabulary_size), y_train)
    return model.predict_proba(bag_of_words(x_test, vocabulary_size))[:, 1]


class CharNGram:
    """A character n-gram model with interpolated Witten-Bell smoothing.

    P(c | h) = (C(h c) + T(h) P(c | h')) / (C(h) + T(h)), where h' drops the oldest
    character of h and T(h) counts the distinct characters seen after h; the recursion
    ends in a uniform distribution over the vocabulary, so no character has probability 0.
    It climbs from the empty context to the order - 1 characters before the target, fewer
    near the start of the sequence, and stops at the first context training never saw.

    Layout: k characters are one int64 code, their ids the digits of a base-vocab_size
    number, oldest first (most significant). For each context length k < order the model
    keeps, sorted, the codes of the (k + 1)-grams seen in training and their counts, and
    the codes of the length-k contexts with C(h) and T(h); looking a context up is a
    searchsorted. Scoring runs the recursion one context length at a time over all
    targets at once, so no loop grows with the text.
    """

    def __init__(self, order: int, vocab_size: int) -> None:
        if order < 1 or vocab_size < 1:
            raise ValueError(f"order and vocab_size must be at least 1, not {order} and {vocab_size}")
        # The longest code, an order-gram, must fit an int64 (order 5 with 100 characters needs 34 bits).
        if vocab_size ** order > np.iinfo(np.int64).max:
            raise ValueError(f"order {order} with {vocab_size} characters overflows the int64 n-gram codes")
        self.order, self.vocab_size = order, vocab_size
        empty = np.zeros(0, dtype=np.int64)
        # Index k: context length k. Grams are (k + 1)-gram codes, contexts k-character codes, all sorted.
        self._grams = [empty] * order
        self._gram_counts = [empty] * order
        self._contexts = [empty] * order
        self._context_totals = [empty] * order  # C(h)
        self._context_types = [empty] * order   # T(h)

    def fit(self, ids: np.ndarray) -> "CharNGram":
        """Count every n-gram of `ids` up to `order` characters; a second fit adds to the first."""
        seq = self._as_ids(ids)
        for k, contexts in self._context_codes(seq):
            # Only targets with k characters before them have a context of length k.
            self._add(k, contexts[k:] * self.vocab_size + seq[k:])
        return self

    def prob(self, context: tuple[int, ...], char: int) -> float:
        """P(char | context); only the last order - 1 characters of the context matter."""
        kept = tuple(context)[max(len(context) - (self.order - 1), 0):]
        return float(self._probabilities(self._as_ids([*kept, char]), len(kept))[0])

    def bits(self, ids: np.ndarray, first_target: int) -> np.ndarray:
        """-log2 P of each target ids[first_target:], given the characters before it."""
        if first_target < 0:
            raise ValueError(f"first_target must be at least 0, not {first_target}")
        return -np.log2(self._probabilities(self._as_ids(ids), first_target))

    def bits_per_char(self, ids: np.ndarray, first_target: int) -> float:
        """Mean -log2 P over the targets ids[first_target:], each given the characters before it."""
        return float(np.mean(self.bits(ids, first_target)))

    def _as_ids(self, ids: np.ndarray | list[int]) -> np.ndarray:
        # int64 before any arithmetic: the pipeline's ids are uint8, and codes reach vocab_size ** order.
        seq = np.asarray(ids).astype(np.int64, copy=False)
        if seq.ndim != 1:
            raise ValueError(f"ids must be one sequence (1-D), not an array of shape {seq.shape}")
        # An id outside the vocabulary would be a digit out of range and alias another n-gram's code.
        if seq.size and (seq.min() < 0 or seq.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), not [{seq.min()}, {seq.max()}]")
        return seq

    def _context_codes(self, seq: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(k, codes) for k = 0 .. order - 1, codes[t] the code of seq[t - k:t]; only t >= k is meaningful."""
        codes = np.zeros(len(seq), dtype=np.int64)
        yield 0, codes
        for k in range(1, self.order):
            # seq[t - k:t] is seq[t - k + 1:t] with one older, more significant, digit in front.
            codes = codes.copy()
            codes[k:] += seq[:max(len(seq) - k, 0)] * self.vocab_size ** (k - 1)
            yield k, codes

    def _add(self, k: int, grams: np.ndarray) -> None:
        # A second fit counts as if its n-grams were appended to the first's, as the dict counts did.
        grams = np.sort(np.concatenate([np.repeat(self._grams[k], self._gram_counts[k]), grams]))
        if not len(grams):
            return
        starts = _run_starts(grams)
        self._grams[k], self._gram_counts[k] = grams[starts], np.diff(np.append(starts, len(grams)))
        # Sorted by code, the grams of one context are one run of code // vocab_size.
        contexts = self._grams[k] // self.vocab_size
        starts = _run_starts(contexts)
        self._contexts[k] = contexts[starts]
        self._context_totals[k] = np.add.reduceat(self._gram_counts[k], starts)
        self._context_types[k] = np.diff(np.append(starts, len(contexts)))

    def _probabilities(self, seq: np.ndarray, first_target: int) -> np.ndarray:
        """P of each target seq[first_target:], the Witten-Bell recursion run for all of them at once."""
        targets = np.arange(first_target, len(seq))
        chars = seq[first_target:]
        p = np.full(len(targets), 1.0 / self.vocab_size)
        # Whether a target's recursion goes on to context length k: it has k characters before it
        # and every shorter context was seen (a longer context of an unseen one is unseen too).
        climbing = np.ones(len(targets), dtype=bool)
        for k, codes in self._context_codes(seq):
            contexts = codes[first_target:]
            row, seen = _find(self._contexts[k], contexts)
            climbing &= (targets >= k) & seen
            if not climbing.any():
                break
            gram, gram_seen = _find(self._grams[k], contexts * self.vocab_size + chars)
            count = np.where(gram_seen, self._gram_counts[k][gram], 0)
            total, types = self._context_totals[k][row], self._context_types[k][row]
            # The same operations, in the same order, as the formula: the numbers match a scalar loop's.
            p = np.where(climbing, (count + types * p) / (total + types), p)
        return p


def _run_starts(sorted_codes: np.ndarray) -> np.ndarray:
    """Index of the first element of each run of equal codes (at least one code)."""
    return np.flatnonzero(np.append(True, sorted_codes[1:] != sorted_codes[:-1]))


def _find(keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each query is in the sorted `keys`, and whether it is there (where not, the index is any valid one)."""
    if not len(keys):
        return np.zeros(len(queries), dtype=np.intp), np.zeros(len(queries), dtype=bool)
    index = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return index, keys[index] == queries
