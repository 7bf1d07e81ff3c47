"""Phrase sentiment: short labelled phrases in English and Russian, written by this project.

The course trains its from-scratch RNN on a tiny set of phrases ("i am good", "this is
not bad"); this module is the project's own set in that spirit, kept here as Python data
so it needs no download and never changes under a seed. Labels are 1 (positive) and
0 (negative). Every adjective appears both plain and after "not" / "не", so the label is
the adjective's polarity flipped by a negator before it: word order matters, and words on
their own do not decide it. The test phrases are new combinations of training words.

Sources: sample (these phrases; auto means the same), local (a CSV text,label,split with
split train or test). There is no remote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import pandas as pd

from omegaconf import MISSING

from rnnlab.errors import DataSourceError

PROVENANCE_LABEL = "project-written phrases"
UNKNOWN = "<unk>"
LANGUAGES = ("en", "ru", "both")
# \w is Unicode-aware, so one pattern splits English and Cyrillic words alike.
TOKEN = re.compile(r"\w+")

TRAIN: dict[str, list[tuple[str, int]]] = {
    "en": [
        ("good", 1), ("bad", 0), ("great", 1), ("awful", 0), ("happy", 1), ("sad", 0),
        ("not good", 0), ("not bad", 1), ("not happy", 0), ("not sad", 1),
        ("very good", 1), ("very bad", 0), ("very nice", 1), ("really boring", 0),
        ("so nice", 1), ("so sad", 0), ("not good at all", 0), ("not bad at all", 1),
        ("this is good", 1), ("this is bad", 0), ("this is not good", 0), ("this is not bad", 1),
        ("this is very good", 1), ("this is very bad", 0), ("this is great", 1), ("this is terrible", 0),
        ("this is not great", 0), ("this is not terrible", 1),
        ("this is not good at all", 0), ("this is not bad at all", 1),
        ("it was fine", 1), ("it was boring", 0), ("it was not fine", 0), ("it was not boring", 1),
        ("it was really nice", 1), ("it was really awful", 0), ("it was not nice", 0), ("it was not awful", 1),
        ("i am happy", 1), ("i am sad", 0), ("i am not happy", 0), ("i am not sad", 1),
        ("i am very happy", 1), ("i am really sad", 0),
        ("i feel good", 1), ("i feel bad", 0), ("i feel fine", 1), ("i feel terrible", 0),
        ("i feel so good", 1), ("i feel so bad", 0),
        ("you are great", 1), ("you are awful", 0), ("you are not nice", 0), ("you are not boring", 1),
        ("the movie is good", 1), ("the movie is boring", 0),
        ("the movie is not boring", 1), ("the movie is not great", 0),
        ("the movie was really great", 1), ("the movie was terrible", 0),
        ("the food is nice", 1), ("the food is awful", 0), ("the food was not bad", 1), ("the food was not good", 0),
        ("today was good", 1), ("today was bad", 0), ("today was not so bad", 1), ("today was not so good", 0),
        ("it is good now", 1), ("it is bad now", 0), ("it is not fine now", 0), ("it is really not bad", 1),
    ],
    "ru": [
        ("хорошо", 1), ("плохо", 0), ("отлично", 1), ("ужасно", 0), ("весело", 1), ("грустно", 0),
        ("прекрасно", 1), ("скучно", 0),
        ("не хорошо", 0), ("не плохо", 1), ("не весело", 0), ("не грустно", 1),
        ("очень хорошо", 1), ("очень плохо", 0), ("очень интересно", 1), ("очень скучно", 0),
        ("так хорошо", 1), ("так плохо", 0), ("не так плохо", 1), ("не так хорошо", 0),
        ("совсем не плохо", 1), ("совсем не хорошо", 0),
        ("это хорошо", 1), ("это плохо", 0), ("это не хорошо", 0), ("это не плохо", 1),
        ("это очень хорошо", 1), ("это очень плохо", 0), ("это отлично", 1), ("это ужасно", 0),
        ("это не интересно", 0), ("это не ужасно", 1), ("это совсем не хорошо", 0), ("это совсем не плохо", 1),
        ("было интересно", 1), ("было скучно", 0), ("было не интересно", 0), ("было не скучно", 1),
        ("было очень весело", 1), ("было очень грустно", 0),
        ("мне весело", 1), ("мне грустно", 0), ("мне не весело", 0), ("мне не грустно", 1),
        ("мне очень весело", 1), ("мне так грустно", 0), ("мне хорошо", 1), ("мне плохо", 0),
        ("мне не хорошо", 0), ("мне не плохо", 1),
        ("мне было интересно", 1), ("мне было скучно", 0), ("мне было не скучно", 1), ("мне было не интересно", 0),
        ("всё хорошо", 1), ("всё плохо", 0), ("всё отлично", 1), ("всё ужасно", 0),
        ("всё не так плохо", 1), ("всё не так хорошо", 0), ("всё было прекрасно", 1), ("всё было очень плохо", 0),
        ("сегодня весело", 1), ("сегодня скучно", 0), ("сегодня не скучно", 1), ("сегодня не весело", 0),
        ("сегодня было прекрасно", 1), ("сегодня было ужасно", 0),
        ("в кино было интересно", 1), ("в кино было скучно", 0),
        ("в кино было не интересно", 0), ("в кино было совсем не скучно", 1),
    ],
}

TEST: dict[str, list[tuple[str, int]]] = {
    "en": [
        ("this is nice", 1), ("this is boring", 0), ("this is not nice", 0), ("this is not boring", 1),
        ("it was good", 1), ("it was sad", 0), ("it was not great", 0), ("it was not terrible", 1),
        ("i am really happy", 1), ("i am very sad", 0), ("i feel great", 1), ("i feel awful", 0),
        ("you are nice", 1), ("you are not great", 0), ("you are not awful", 1),
        ("the movie is not good", 0), ("the movie is not bad", 1), ("the movie was really boring", 0),
        ("the food is great", 1), ("the food is not nice", 0), ("the food was not awful", 1),
        ("today was not good", 0), ("today was not bad", 1), ("it is not good now", 0),
        ("not great at all", 0), ("not terrible at all", 1),
    ],
    "ru": [
        ("это весело", 1), ("это скучно", 0), ("это не весело", 0), ("это не скучно", 1),
        ("было хорошо", 1), ("было плохо", 0), ("было не хорошо", 0), ("было не плохо", 1),
        ("мне очень хорошо", 1), ("мне очень плохо", 0),
        ("мне было весело", 1), ("мне было грустно", 0), ("мне было не грустно", 1),
        ("всё было интересно", 1), ("всё было скучно", 0), ("всё было не плохо", 1),
        ("сегодня хорошо", 1), ("сегодня грустно", 0), ("сегодня не грустно", 1), ("сегодня было не весело", 0),
        ("в кино было весело", 1), ("в кино было грустно", 0), ("в кино было не весело", 0),
        ("это совсем не скучно", 1), ("совсем не интересно", 0), ("не так скучно", 1),
    ],
}


@dataclass
class Schema:
    """conf/data/phrases.yaml."""

    # Every key shapes what fetch writes; prepare has nothing of its own to choose.
    PREPARE_KEYS: ClassVar[tuple[str, ...]] = ()

    name: str = MISSING
    source: str = MISSING
    path: Optional[str] = MISSING
    language: str = MISSING


def check(d: Any, require: Callable[[bool, str, Any, str], None]) -> None:
    """Range checks beyond the schema's types; `require(ok, key, value, rule)` raises ConfigError."""
    require(d.source != "remote", "data.source", d.source,
            "the phrases are written by this project and have no remote; use sample (or auto), "
            "or local with data.path=<csv with columns text,label,split>")
    require(d.language in LANGUAGES, "data.language", d.language, f"choose one of {', '.join(LANGUAGES)}")


@dataclass(frozen=True)
class Phrases:
    """Texts with 0/1 labels, split into train and test."""

    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    provenance: dict[str, Any]


def fetch_to(folder: Path, data: Any, seed: int) -> dict[str, Any]:
    """Write phrases.csv (text,label,split); returns provenance. `seed` is unused: nothing is random."""
    phrases = load(data)
    frame = pd.concat([
        pd.DataFrame({"text": phrases.train_texts, "label": phrases.train_labels, "split": "train"}),
        pd.DataFrame({"text": phrases.test_texts, "label": phrases.test_labels, "split": "test"}),
    ])
    frame.to_csv(folder / "phrases.csv", index=False)
    counts = {"train": len(phrases.train_texts), "test": len(phrases.test_texts),
              "train_positive": int(phrases.train_labels.sum()), "test_positive": int(phrases.test_labels.sum()),
              "vocabulary": len(build_vocabulary(phrases.train_texts))}
    return {**phrases.provenance, "counts": counts}


def read_raw(folder: Path) -> dict[str, Any]:
    """What fetch_to wrote: texts and labels per split."""
    frame = pd.read_csv(folder / "phrases.csv", keep_default_na=False)
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    return {"train_texts": train["text"].tolist(), "train_labels": train["label"].to_numpy(dtype=np.int64),
            "test_texts": test["text"].tolist(), "test_labels": test["label"].to_numpy(dtype=np.int64)}


def load(data: Any) -> Phrases:
    """Phrases from `data.source`: sample (and auto, which can only mean the sample) or local."""
    if data.source in ("sample", "auto"):
        return from_sample(data.language)
    if data.source == "local":
        return from_csv(Path(data.path))
    raise DataSourceError(f"data.source={data.source}: the phrases are written by this project and have no "
                          "remote. Use data.source=sample, or data.source=local data.path=<csv text,label,split>.")


def from_sample(language: str) -> Phrases:
    """The project's phrases in one language or both (English first)."""
    languages = ("en", "ru") if language == "both" else (language,)
    train = [pair for lang in languages for pair in TRAIN[lang]]
    test = [pair for lang in languages for pair in TEST[lang]]
    return Phrases(
        train_texts=[text for text, _ in train], train_labels=np.array([y for _, y in train], dtype=np.int64),
        test_texts=[text for text, _ in test], test_labels=np.array([y for _, y in test], dtype=np.int64),
        provenance={"source": "sample", "synthetic": True, "label": PROVENANCE_LABEL, "language": language,
                    "generator": "rnnlab.data.datasets.phrases"},
    )


def from_csv(path: Path) -> Phrases:
    """A CSV with columns text,label,split; split says train or test for every row."""
    try:
        frame = pd.read_csv(path, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"data.path={path}: cannot read it as CSV ({exc}). "
                              "Give a UTF-8 CSV with a header row text,label,split.") from exc
    missing = {"text", "label", "split"} - set(frame.columns)
    if missing:
        raise DataSourceError(f"data.path={path}: missing column(s) {sorted(missing)}; "
                              f"found {list(frame.columns)}. The CSV needs columns text,label,split.")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = frame.index[~labels.isin([0, 1])]
    if len(bad):
        raise DataSourceError(f"data.path={path}: label must be 0 or 1; row {int(bad[0]) + 2} has "
                              f"{frame['label'].iloc[bad[0]]!r}.")
    bad = frame.index[~frame["split"].isin(["train", "test"])]
    if len(bad):
        raise DataSourceError(f"data.path={path}: split must be train or test; row {int(bad[0]) + 2} has "
                              f"{frame['split'].iloc[bad[0]]!r}.")
    is_train = (frame["split"] == "train").to_numpy()
    if is_train.all() or not is_train.any():
        raise DataSourceError(f"data.path={path}: needs rows of both splits, train and test.")
    texts = frame["text"].astype(str).tolist()
    y = labels.to_numpy(dtype=np.int64)
    return Phrases(
        train_texts=[t for t, keep in zip(texts, is_train) if keep], train_labels=y[is_train],
        test_texts=[t for t, keep in zip(texts, is_train) if not keep], test_labels=y[~is_train],
        provenance={"source": "local", "path": str(path.resolve()), "synthetic": False},
    )


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def build_vocabulary(train_texts: list[str]) -> dict[str, int]:
    """Word -> id from the training phrases only, <unk> first; sorted so it never depends on set order."""
    words = sorted({word for text in train_texts for word in tokenize(text)})
    return {UNKNOWN: 0, **{word: i for i, word in enumerate(words, start=1)}}


def one_hot_sequences(texts: list[str], vocabulary: dict[str, int], maxlen: int | None = None,
                      dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """One-hot words, as the course feeds its RNN, batched: x (phrases, maxlen, vocabulary) and mask.

    Phrases are padded at the front with all-zero vectors, and mask (phrases, maxlen) is 1 on
    real words. Front padding puts every phrase's last word at the last step, where a
    many-to-one model reads its answer; the models also carry their state through masked
    steps, so the padding changes nothing. Words not in the vocabulary become <unk>; a
    phrase longer than `maxlen` keeps its last `maxlen` words.
    """
    tokens = [tokenize(text) for text in texts]
    maxlen = maxlen or max(len(t) for t in tokens)
    x = np.zeros((len(texts), maxlen, len(vocabulary)), dtype=dtype)
    mask = np.zeros((len(texts), maxlen), dtype=dtype)
    for row, words in enumerate(tokens):
        words = words[-maxlen:]
        start = maxlen - len(words)
        ids = [vocabulary.get(word, vocabulary[UNKNOWN]) for word in words]
        x[row, np.arange(start, maxlen), ids] = 1.0
        mask[row, start:] = 1.0
    return x, mask


def prepare(raw: dict[str, Any], data: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One-hot word sequences, padded at the front; vocabulary from the training phrases."""
    vocabulary = build_vocabulary(raw["train_texts"])
    maxlen = max(len(t.split()) for t in raw["train_texts"] + raw["test_texts"])
    x_train, _ = one_hot_sequences(raw["train_texts"], vocabulary, maxlen, dtype=np.float32)
    x_test, _ = one_hot_sequences(raw["test_texts"], vocabulary, maxlen, dtype=np.float32)
    arrays = {"x_train": x_train, "y_train": raw["train_labels"], "x_test": x_test, "y_test": raw["test_labels"]}
    extra = {"task": "binary", "input_spec": {"kind": "onehot", "length": maxlen, "features": len(vocabulary)},
             "vocabulary": vocabulary, "test_texts": raw["test_texts"]}
    return arrays, extra


def examples(data: dict[str, Any], p_model: np.ndarray, p_baseline: np.ndarray) -> list[dict[str, Any]]:
    """Every test phrase with both predictions: there are few, and each is readable."""
    return [{"text": text, "label": int(y), "p_model": round(float(pm), 4), "p_baseline": round(float(pb), 4)}
            for text, y, pm, pb in zip(data["meta"]["test_texts"], data["y_test"], p_model, p_baseline)]
