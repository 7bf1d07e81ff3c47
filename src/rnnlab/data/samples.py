"""Offline sample data, generated deterministically from a seed.

The synthetic review corpus stands in for IMDB when the network is out of reach.
It is built so that word order matters: every review carries one to three
sentiment phrases such as "was not very good", and a phrase's polarity is the
adjective's polarity flipped by a negator right before it. Each phrase is negated
exactly when its adjective disagrees with the review's label, so the adjectives
and the negators are, on their own, independent of the label. A bag-of-words
model therefore sees an XOR it cannot separate, while a recurrent model that
reads "not" before "good" can.

The synthetic text stands in for a Gutenberg book. It comes from a small
probabilistic grammar (clauses joined by conjunctions, dialogue in quotes,
sentences in paragraphs, lines wrapped as in a Gutenberg file), so a character
model has spelling, word order and punctuation to learn, as in a real book.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass

import numpy as np

SYNTHETIC_LABEL = "synthetic sample"

POSITIVE = ["good", "great", "excellent", "wonderful", "brilliant",
            "enjoyable", "superb", "fun", "touching", "clever"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "dull",
            "poor", "weak", "dreadful", "stupid", "painful"]
NEGATORS = ["not", "never", "hardly"]
INTENSIFIERS = ["very", "really", "truly", "quite", "extremely"]
SUBJECTS = ["the movie", "the film", "the plot", "the acting", "the script",
            "the ending", "the story", "this picture", "the cast", "the dialogue"]
VERBS = ["was", "is", "seemed", "felt"]

# Neutral sentences; several use "not" or "never" about something else, so a
# negator on its own says nothing about the review's sentiment.
FILLER = [
    "i watched this movie last night with my brother",
    "we saw it in a small cinema near the station",
    "the director has made several other films",
    "it runs for about two hours",
    "i had never heard of the lead actor before",
    "my friend did not come with me this time",
    "it was not released in my country until last year",
    "the music is mostly piano and strings",
    "i do not usually watch this kind of film",
    "the story takes place in a quiet town by the sea",
    "there is a long scene in a train",
    "the cast includes a few famous faces",
    "i read the book many years ago",
    "the film was shot in black and white",
    "some of the scenes were filmed at night",
    "the second half moves to the city",
    "it is based on a true story",
    "my sister never watches films like this",
    "the studio released it in the summer",
    "there are three main characters",
]


@dataclass(frozen=True)
class ReviewCorpus:
    """Reviews as word lists with 0/1 labels, split into train and test."""

    train_words: list[list[str]]
    train_labels: np.ndarray
    test_words: list[list[str]]
    test_labels: np.ndarray


def _sentiment_phrase(rng: np.random.Generator, label: int) -> list[str]:
    adjective_positive = bool(rng.integers(2))
    adjective = rng.choice(POSITIVE if adjective_positive else NEGATIVE)
    negated = adjective_positive != bool(label)
    words = rng.choice(SUBJECTS).split() + [rng.choice(VERBS)]
    if negated:
        words.append(rng.choice(NEGATORS))
    if rng.random() < 0.4:
        words.append(rng.choice(INTENSIFIERS))
    words.append(adjective)
    return words


def _review(rng: np.random.Generator, label: int) -> list[str]:
    n_phrases = int(rng.integers(1, 4))
    n_filler = int(rng.integers(1, 9))
    sentences = [rng.choice(FILLER).split() for _ in range(n_filler)]
    for _ in range(n_phrases):
        sentences.insert(int(rng.integers(len(sentences) + 1)), _sentiment_phrase(rng, label))
    # The last phrase also closes the review, so truncation that keeps the end of
    # a long review (keras' default) still keeps a phrase that decides the label.
    sentences.append(_sentiment_phrase(rng, label))
    return [word for sentence in sentences for word in sentence]


def synthetic_reviews(n_train: int, n_test: int, seed: int) -> ReviewCorpus:
    """Balanced, shuffled synthetic reviews; the same seed gives the same corpus."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[list[list[str]], np.ndarray]:
        labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
        return [_review(rng, int(y)) for y in labels], labels

    train_words, train_labels = make(n_train)
    test_words, test_labels = make(n_test)
    return ReviewCorpus(train_words, train_labels, test_words, test_labels)


def word_index_by_frequency(documents: list[list[str]]) -> dict[str, int]:
    """Rank words by frequency from 1, the form of keras' IMDB word index."""
    counts = Counter(word for doc in documents for word in doc)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return {word: rank for rank, word in enumerate(ranked, start=1)}


CHARACTERS = ["Alice", "the rabbit", "the queen", "the hatter", "the cat", "the duchess",
              "the king", "the mouse", "the cook", "the caterpillar"]
ADJECTIVES = ["little", "curious", "large", "white", "old", "sleepy", "angry", "tiny", "golden", "strange"]
THINGS = ["door", "key", "garden", "bottle", "cake", "hat", "tree", "table", "watch", "box"]
PLACES = ["in the garden", "under the table", "by the river", "at the door", "in the hall",
          "on the hill", "near the house", "behind the tree"]
TRANSITIVE = ["found", "opened", "took", "carried", "dropped", "watched", "wanted", "painted"]
INTRANSITIVE = ["ran", "laughed", "cried", "waited", "fell", "sang", "slept", "shouted"]
ADVERBS = ["quickly", "slowly", "loudly", "quietly", "again", "at once"]
CONJUNCTIONS = ["and", "but", "because", "so", "when", "while"]
SPEECH_VERBS = ["said", "cried", "asked", "whispered"]
EXCLAMATIONS = ["oh dear", "how curious", "off with its head", "what a strange day", "never mind"]
LINE_WIDTH = 70


def synthetic_text(n_chars: int, seed: int) -> str:
    """Exactly `n_chars` characters of English-like text; the same seed gives the same text."""
    rng = np.random.default_rng(seed)

    def pick(options: list[str]) -> str:
        return options[int(rng.integers(len(options)))]

    def noun_phrase() -> str:
        if rng.random() < 0.5:
            return pick(CHARACTERS)
        noun = f"{pick(ADJECTIVES)} {pick(THINGS)}" if rng.random() < 0.6 else pick(THINGS)
        article = pick(["the", "a", "her", "his"])
        if article == "a" and noun[0] in "aeiou":
            article = "an"
        return f"{article} {noun}"

    def clause() -> str:
        roll = rng.random()
        if roll < 0.45:
            words = [pick(CHARACTERS), pick(TRANSITIVE), noun_phrase()]
        elif roll < 0.8:
            words = [pick(CHARACTERS), pick(INTRANSITIVE)] + ([pick(ADVERBS)] if rng.random() < 0.5 else [])
        else:
            words = [noun_phrase(), "was", *(["very"] if rng.random() < 0.3 else []), pick(ADJECTIVES)]
        if rng.random() < 0.4:
            words.append(pick(PLACES))
        return " ".join(words)

    def sentence() -> str:
        if rng.random() < 0.15:  # dialogue: a quoted exclamation or question, then who said it
            mark = pick(["!", "?", ","])
            return f'"{pick(EXCLAMATIONS).capitalize()}{mark}" {pick(SPEECH_VERBS)} {pick(CHARACTERS)}.'
        text = clause()
        while rng.random() < 0.35:
            text += f"{',' if rng.random() < 0.5 else ''} {pick(CONJUNCTIONS)} {clause()}"
        return text[0].upper() + text[1:] + pick([".", ".", ".", "!", "?"])

    def paragraph() -> str:
        sentences = [sentence() for _ in range(int(rng.integers(2, 8)))]
        return textwrap.fill(" ".join(sentences), width=LINE_WIDTH)

    paragraphs, length = [], 0
    while length < n_chars:
        paragraphs.append(paragraph())
        length += len(paragraphs[-1]) + 2
    return "\n\n".join(paragraphs)[:n_chars]
