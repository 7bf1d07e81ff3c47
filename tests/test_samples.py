import numpy as np

from rnnlab.baselines import bag_of_words_logistic_regression
from rnnlab.data import samples
from rnnlab.data.datasets import imdb


def test_same_seed_same_corpus_and_other_seed_differs():
    a = samples.synthetic_reviews(200, 100, seed=1)
    b = samples.synthetic_reviews(200, 100, seed=1)
    c = samples.synthetic_reviews(200, 100, seed=2)
    assert a.train_words == b.train_words and np.array_equal(a.test_labels, b.test_labels)
    assert a.train_words != c.train_words


def test_balanced_and_varied_length():
    corpus = samples.synthetic_reviews(1000, 400, seed=0)
    assert corpus.train_labels.mean() == 0.5 and corpus.test_labels.mean() == 0.5
    lengths = [len(words) for words in corpus.train_words]
    assert min(lengths) < 25 and max(lengths) > 70


def _phrase_polarities(words: list[str]) -> list[int]:
    """+1/-1 for each sentiment adjective, flipped when a negator precedes it (maybe through an intensifier)."""
    polarities = []
    for i, word in enumerate(words):
        if word in samples.POSITIVE or word in samples.NEGATIVE:
            sign = 1 if word in samples.POSITIVE else -1
            before = words[i - 1] if words[i - 1] not in samples.INTENSIFIERS else words[i - 2]
            polarities.append(-sign if before in samples.NEGATORS else sign)
    return polarities


def test_label_is_decided_by_negation_in_order():
    corpus = samples.synthetic_reviews(500, 10, seed=3)
    for words, label in zip(corpus.train_words, corpus.train_labels):
        polarities = _phrase_polarities(words)
        assert polarities and all(p == (1 if label else -1) for p in polarities)


def test_adjectives_alone_do_not_reveal_the_label():
    corpus = samples.synthetic_reviews(4000, 10, seed=4)
    share_positive_adjectives = {
        label: np.mean([w in samples.POSITIVE for doc, y in zip(corpus.train_words, corpus.train_labels)
                        if y == label for w in doc if w in samples.POSITIVE or w in samples.NEGATIVE])
        for label in (0, 1)
    }
    assert abs(share_positive_adjectives[0] - share_positive_adjectives[1]) < 0.03


def test_bag_of_words_stays_near_chance():
    corpus = samples.synthetic_reviews(3000, 1000, seed=5)
    word_index = samples.word_index_by_frequency(corpus.train_words)
    from rnnlab.data.prepare import pad

    x_train = pad(imdb.encode(corpus.train_words, word_index, 20000), 80)
    x_test = pad(imdb.encode(corpus.test_words, word_index, 20000), 80)
    p = bag_of_words_logistic_regression(x_train, corpus.train_labels, x_test, 20000)
    accuracy = ((p >= 0.5) == corpus.test_labels).mean()
    assert 0.4 < accuracy < 0.6
