"""Simple baselines, fit and scored on the same split as the models they stand beside."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

# Token ids 0 (padding) and 1 (review start) carry no words.
_RESERVED_IDS = 2


def bag_of_words(ids: np.ndarray, vocabulary_size: int) -> sparse.csr_matrix:
    """Counts of each token id per row: word order thrown away."""
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
