"""Simple baselines, fit and scored on the same split as the models they stand beside."""

from __future__ import annotations

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
    """

    def __init__(self, order: int, vocab_size: int) -> None:
        self.order, self.vocab_size = order, vocab_size
        # counts[k][context of length k] -> {next id: count}
        self.counts: list[dict[tuple[int, ...], dict[int, int]]] = [{} for _ in range(order)]

    def fit(self, ids: np.ndarray) -> "CharNGram":
        seq = [int(i) for i in ids]
        for t in range(len(seq)):
            for k in range(min(self.order - 1, t) + 1):
                context = tuple(seq[t - k:t])
                followers = self.counts[k].setdefault(context, {})
                followers[seq[t]] = followers.get(seq[t], 0) + 1
        return self

    def prob(self, context: tuple[int, ...], char: int) -> float:
        p = 1.0 / self.vocab_size
        for k in range(min(len(context), self.order - 1) + 1):
            followers = self.counts[k].get(context[len(context) - k:] if k else ())
            if not followers:
                break
            total, types = sum(followers.values()), len(followers)
            p = (followers.get(char, 0) + types * p) / (total + types)
        return p

    def bits(self, ids: np.ndarray, first_target: int) -> np.ndarray:
        """-log2 P of each target ids[first_target:], given the characters before it."""
        seq = [int(i) for i in ids]
        return np.array([-np.log2(self.prob(tuple(seq[max(0, t - self.order + 1):t]), seq[t]))
                         for t in range(first_target, len(seq))])

    def bits_per_char(self, ids: np.ndarray, first_target: int) -> float:
        """Mean -log2 P over the targets ids[first_target:], each given the characters before it."""
        return float(np.mean(self.bits(ids, first_target)))
