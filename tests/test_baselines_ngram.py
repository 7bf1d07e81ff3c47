"""The vectorized character n-gram gives the numbers of the per-character loop it replaced, faster."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from rnnlab.baselines import CharNGram
from rnnlab.data.prepare import CharVocabulary


class LoopCharNGram:
    """The spec: the loop implementation CharNGram had before it was vectorized, copied unchanged."""

    def __init__(self, order: int, vocab_size: int) -> None:
        self.order, self.vocab_size = order, vocab_size
        # counts[k][context of length k] -> {next id: count}
        self.counts: list[dict[tuple[int, ...], dict[int, int]]] = [{} for _ in range(order)]

    def fit(self, ids: np.ndarray) -> "LoopCharNGram":
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
        seq = [int(i) for i in ids]
        return np.array([-np.log2(self.prob(tuple(seq[max(0, t - self.order + 1):t]), seq[t]))
                         for t in range(first_target, len(seq))])


@pytest.fixture(scope="module")
def alice() -> tuple[CharVocabulary, np.ndarray, np.ndarray]:
    """Alice split 90/10 as the Gutenberg stage splits it: the vocabulary from the training part only."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alice_in_wonderland.txt"
    if not path.is_file():
        pytest.skip(f"{path} is not here (CI and sessions have ../shared beside the project)")
    text = path.read_text(encoding="utf-8")
    split = int(round(len(text) * 0.9))
    vocab = CharVocabulary.from_text(text[:split])
    return vocab, vocab.encode(text[:split]), vocab.encode(text[split:])


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_bits_on_the_held_out_tail_of_alice_equal_the_loop(alice, order: int):
    vocab, train, test = alice
    reference = LoopCharNGram(order, vocab.size).fit(train)
    model = CharNGram(order, vocab.size).fit(train)
    # The tail holds what the recursion must stop at: characters training lacks (id 0) and, above
    # order 1, contexts training never saw; scoring from target 0 also cuts contexts at the start.
    assert (test == 0).any()
    contexts = [tuple(int(i) for i in test[t - order + 1:t]) for t in range(order - 1, len(test))]
    assert order == 1 or any(c not in reference.counts[order - 1] for c in contexts)

    expected, bits = reference.bits(test, 0), model.bits(test, 0)
    assert bits.shape == expected.shape == (len(test),)
    assert np.max(np.abs(bits - expected)) < 1e-9
    assert model.bits_per_char(test, 100) == pytest.approx(np.mean(expected[100:]), abs=1e-9)
    for context, char in [((), 5), (tuple(test[:2]), int(test[2])), (tuple(test[:30]), 0), (tuple(train[-7:]), 1)]:
        assert model.prob(context, char) == pytest.approx(reference.prob(context, char), abs=1e-12)


def test_probabilities_over_the_vocabulary_sum_to_one(alice):
    vocab, train, test = alice
    model = CharNGram(5, vocab.size).fit(train)
    contexts = {"empty": (), "start of a text": tuple(vocab.encode("A")),
                "seen": tuple(vocab.encode("Alice")), "seen, longer than the order": tuple(train[1000:1020]),
                "unseen": tuple(vocab.encode("qzxq")), "unknown characters": (0, 0, 0, 0)}
    for name, context in contexts.items():
        p = np.array([model.prob(context, c) for c in range(vocab.size)])
        assert p.min() > 0, name
        assert p.sum() == pytest.approx(1.0, abs=1e-12), name


def test_repeated_fits_short_sequences_and_a_small_vocabulary_match_the_loop():
    rng = np.random.default_rng(0)
    first, second, scored = rng.integers(0, 3, 500), rng.integers(0, 3, 3), rng.integers(0, 3, 200)
    # Three characters and order 5: most contexts are seen, so the recursion runs to the top.
    model = CharNGram(5, 3).fit(first).fit(second)
    reference = LoopCharNGram(5, 3).fit(first).fit(second)
    assert np.max(np.abs(model.bits(scored, 0) - reference.bits(scored, 0))) < 1e-9
    assert np.max(np.abs(model.bits(scored[:2], 0) - reference.bits(scored[:2], 0))) < 1e-9
    assert model.bits(scored, len(scored)).shape == (0,)
    # Nothing seen: the uniform distribution.
    assert CharNGram(3, 4).fit(np.zeros(0, dtype=np.uint8)).bits(scored, 0) == pytest.approx(2.0)


def test_codes_that_would_overflow_int64_and_ids_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError, match="overflows"):
        CharNGram(10, 100)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        CharNGram(2, 3).fit(np.array([0, 1, 3]))


def test_the_vectorized_model_is_at_least_five_times_faster_than_the_loop(alice):
    vocab, train, _ = alice
    # About 150k characters: 135k to fit on, the 15k after them to score.
    ids = train[:150_000]
    fit_part, scored = ids[:135_000], ids[135_000:]

    def cpu_seconds(model_class: type) -> float:
        # The best of three: a burst of other work on the machine only ever makes one run slower.
        times = []
        for _ in range(3):
            start = time.process_time()
            model_class(5, vocab.size).fit(fit_part).bits(scored, 0)
            times.append(time.process_time() - start)
        return min(times)

    loop, vectorized = cpu_seconds(LoopCharNGram), cpu_seconds(CharNGram)
    assert loop >= 5 * vectorized, f"loop {loop:.3f} s, vectorized {vectorized:.3f} s"
