import logging

import numpy as np
import pytest
from omegaconf import OmegaConf

from rnnlab.data.datasets import imdb
from rnnlab.errors import DataSourceError


def data_cfg(**overrides):
    base = {"name": "imdb", "source": "sample", "path": None, "test_fraction": 0.5, "num_words": 20000,
            "maxlen": 80, "padding": "pre", "truncating": "pre", "sample_train": 60, "sample_test": 40, "limit": None}
    return OmegaConf.create({**base, **overrides})


def test_encoding_follows_keras_imdb_and_decodes_back():
    word_index = {"the": 1, "movie": 2, "good": 3}
    ids = imdb.encode([["the", "movie", "was", "good"]], word_index, num_words=6)[0]
    # start=1, rank+3, unknown word and ranks past num_words -> 2
    assert ids == [1, 4, 5, 2, 2]
    assert imdb.decode(np.array([0, 0, 1, 4, 5, 2]), word_index) == "the movie <oov>"


def test_csv_source_builds_vocabulary_on_training_part_only(tmp_path):
    rows = [f"common words here train{i}" for i in range(10)]
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\n" + "\n".join(f"{t},{i % 2}" for i, t in enumerate(rows)) + "\n")
    reviews = imdb.from_csv(csv, num_words=1000, test_fraction=0.5, seed=0)
    assert len(reviews.train) == 5 and len(reviews.test) == 5
    train_only = {w for w in reviews.word_index if w.startswith("train")}
    assert len(train_only) == 5  # the test part's unique words never enter the vocabulary
    for seq in reviews.test:
        assert seq[0] == imdb.START_ID and seq[-1] == imdb.OOV_ID  # its own trainN word is unknown
    assert reviews.provenance["source"] == "local" and reviews.provenance["synthetic"] is False


@pytest.mark.parametrize("content, message", [
    ("", "cannot read it as CSV"),
    ("review,sentiment\nnice,1\nbad,0\nok,1\nmeh,0\n", "missing column"),
    ("text,label\nnice,1\nbad,0\nok,yes\nmeh,0\n", "label must be 0 or 1; row 4"),
    ("text,label\nnice,1\n", "at least 4"),
])
def test_bad_csv_gets_a_clear_error(tmp_path, content, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    with pytest.raises(DataSourceError, match=message):
        imdb.from_csv(csv, num_words=100, test_fraction=0.5, seed=0)


def test_remote_without_network_fails_naming_the_fix():
    assert not imdb.host_reachable(imdb.REMOTE_HOST), "this test expects the offline machine"
    with pytest.raises(DataSourceError, match="data.source=sample"):
        imdb.load(data_cfg(source="remote"), seed=0)


def test_auto_falls_back_to_the_labelled_sample_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        reviews = imdb.load(data_cfg(source="auto"), seed=0)
    assert "SYNTHETIC SAMPLE" in caplog.text
    assert reviews.provenance["synthetic"] is True
    assert reviews.provenance["label"] == "synthetic sample"
    assert reviews.provenance["requested_source"] == "auto"
    assert "unreachable" in reviews.provenance["fallback_reason"]
    assert len(reviews.train) == 60 and len(reviews.test) == 40


def test_remote_runs_the_real_keras_loader(tmp_path, monkeypatch):
    """Only the download (the far end) is replaced: keras' own parsing, filtering and shuffling run."""
    import keras.src.datasets.imdb as keras_imdb

    rng = np.random.default_rng(0)
    seqs = np.empty(8, dtype=object)
    for i in range(8):
        seqs[i] = [1] + rng.integers(4, 30, size=5 + i).tolist()
    archive = tmp_path / "imdb.npz"
    np.savez(archive, x_train=seqs, y_train=np.arange(8) % 2, x_test=seqs, y_test=np.arange(8) % 2)
    index_file = tmp_path / "imdb_word_index.json"
    index_file.write_text('{"the": 1, "film": 2}')
    downloads = []

    def fake_get_file(fname=None, origin=None, **kwargs):
        downloads.append(origin)
        return str(index_file if "word_index" in origin else archive)

    monkeypatch.setattr(keras_imdb, "get_file", fake_get_file)
    monkeypatch.setattr(imdb, "host_reachable", lambda host, **kw: True)
    reviews = imdb.load(data_cfg(source="remote", num_words=20), seed=0)
    assert any(o.endswith("imdb.npz") for o in downloads)
    assert len(reviews.train) == 8 and reviews.word_index == {"the": 1, "film": 2}
    assert max(max(s) for s in reviews.train) < 20  # num_words applied by keras
    assert reviews.provenance["source"] == "remote" and reviews.provenance["synthetic"] is False
