"""Faults made for real on the data side: prepared arrays altered or cut short on disk, an HTML
page served as the book by a real HTTP server on 127.0.0.1, a pinned sha256 that does not match,
plain http:// URLs, a text too short for one window, damaged local files, a negative seed given
to the real `python -m rnnlab.train`. Each must give one clear message and leave nothing behind."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT, subprocess_env
from rnnlab import io
from rnnlab.config import compose, dataset_config
from rnnlab.data import cache as cache_module
from rnnlab.data.cache import ensure_prepared
from rnnlab.data.datasets import gutenberg
from rnnlab.data.fetch import fetch
from rnnlab.data.prepare import PreparedDataError, load_prepared, prepare
from rnnlab.errors import ConfigError, DataSourceError

BOOK = ("*** START OF THE PROJECT GUTENBERG EBOOK A TEST BOOK ***\n"
        + "alice was beginning to get very tired of sitting by her sister on the bank.\n" * 40
        + "*** END OF THE PROJECT GUTENBERG EBOOK A TEST BOOK ***\nLicense.\n").encode()
HTML = (b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>"
        b"<body><h1>Please try again later</h1></body></html>\n")


def book_cfg(*extra: str):
    return compose(["experiment=textgen_lstm", "data.source=sample", "data.sample_chars=3000", *extra])


def alter_one_value(npz_path: Path) -> None:
    """Rewrite arrays.npz with one id changed: still a valid npz, other bytes."""
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays["ids_train"] = arrays["ids_train"].copy()
    arrays["ids_train"][5] = (int(arrays["ids_train"][5]) + 1) % int(arrays["ids_train"].max() + 1)
    io.write_npz(npz_path, **arrays)
    with np.load(npz_path, allow_pickle=False) as npz:  # really still readable
        assert npz["ids_train"][5] == arrays["ids_train"][5]


def truncate(path: Path) -> None:
    body = path.read_bytes()
    path.write_bytes(body[: len(body) // 2])


def listing(folder: Path) -> list[str]:
    """Everything below `folder`, folders included (an empty entry or lock folder counts)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def files(folder: Path) -> list[str]:
    return [name for name in listing(folder) if (folder / name).is_file()]


EXPERIMENT = {"imdb": "imdb_lstm", "prices": "stock_lstm", "gutenberg": "textgen_lstm"}


# --- prepared data is verified before it is used ------------------------------------------------


@pytest.mark.parametrize("damage", [alter_one_value, truncate], ids=["altered", "truncated"])
def test_damaged_pipeline_data_is_refused_naming_the_folder_and_the_fix(isolated_root, damage):
    cfg = book_cfg()
    fetch(cfg)
    folder = prepare(cfg)
    assert load_prepared(folder)["meta"]["sha256"] == io.sha256_file(folder / "arrays.npz")
    damage(folder / "arrays.npz")
    with pytest.raises(PreparedDataError) as caught:
        load_prepared(folder)
    message = str(caught.value)
    assert str(folder) in message and "dvc repro prepare@gutenberg" in message and "sha256" in message
    # a Hydra run with the pipeline's settings reads the pipeline's folder: refused the same way
    with pytest.raises(PreparedDataError, match="dvc repro prepare@gutenberg"):
        ensure_prepared(cfg)
    assert not (isolated_root / "data" / "cache").exists()


def test_a_prepared_folder_without_its_arrays_is_refused(isolated_root):
    cfg = book_cfg()
    fetch(cfg)
    folder = prepare(cfg)
    (folder / "arrays.npz").unlink()
    with pytest.raises(PreparedDataError, match=r"arrays.npz cannot be read"):
        load_prepared(folder)


def cached_entry(root: Path) -> Path:
    (entry,) = (root / "data" / "cache").iterdir()
    return entry


@pytest.mark.parametrize("damage", [alter_one_value, truncate], ids=["altered", "truncated"])
def test_a_damaged_cache_entry_is_rebuilt_once_with_a_warning(isolated_root, caplog, damage):
    cfg = book_cfg("data.window=12")  # other settings than the pipeline's: the cache builds it
    first = ensure_prepared(cfg)
    entry = cached_entry(isolated_root)
    damage(entry / "prepared" / "arrays.npz")
    with caplog.at_level(logging.WARNING, logger="rnnlab.data.cache"):
        again = ensure_prepared(cfg)
    assert "does not verify; rebuilding it once" in caplog.text
    np.testing.assert_array_equal(again["ids_train"], first["ids_train"])
    meta = io.read_json(entry / "prepared" / "meta.json")
    assert meta["sha256"] == io.sha256_file(entry / "prepared" / "arrays.npz")
    assert sorted(p.name for p in entry.iterdir()) == [".lock", "prepared", "raw"]  # no temporary folder left
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rnnlab.data.cache"):
        ensure_prepared(cfg)
    assert "rebuilding" not in caplog.text  # verified now: reused


def test_a_rebuild_that_does_not_verify_fails_and_leaves_no_entry(isolated_root, monkeypatch):
    cfg = book_cfg("data.window=12")
    ensure_prepared(cfg)
    entry = cached_entry(isolated_root)
    truncate(entry / "prepared" / "arrays.npz")

    def prepare_on_a_bad_disk(*args, **kwargs):
        out = prepare(*args, **kwargs)
        alter_one_value(out / "arrays.npz")
        return out

    monkeypatch.setattr(cache_module, "prepare", prepare_on_a_bad_disk)
    with pytest.raises(DataSourceError, match="was rebuilt but still does not verify") as caught:
        ensure_prepared(cfg)
    assert str(entry) in str(caught.value)
    assert listing(isolated_root / "data" / "cache") == []


def test_a_text_shorter_than_one_window_fails_before_anything_is_cached(isolated_root, tmp_path):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("abcde\n")
    cfg = compose(["experiment=textgen_lstm", "data.source=local", f"data.path={tiny}"])
    with pytest.raises(DataSourceError, match=r"a text of 6 characters is too short") as caught:
        ensure_prepared(cfg)
    assert "data.window=10" in str(caught.value) and str(tiny) in str(caught.value)
    assert listing(isolated_root / "data" / "cache") == []  # no entry, no lock, no temporary folder


def test_a_text_too_short_for_the_test_part_is_refused(tmp_path):
    data = dataset_config("gutenberg", {"window": 10, "test_fraction": 0.1})
    with pytest.raises(DataSourceError, match=r"test part \(10\)"):
        gutenberg.prepare({"text": "x" * 100, "provenance": {}}, data)
    arrays, extra = gutenberg.prepare({"text": "x" * 110, "provenance": {}}, data)
    assert extra["n_train"] >= 1 and extra["n_test"] >= 1


def test_the_sequence_framing_needs_two_chunks_of_training_text():
    data = dataset_config("gutenberg", {"window": 10, "test_fraction": 0.1, "framing": "sequence", "seq_len": 100})
    arrays, extra = gutenberg.prepare({"text": "abc " * 50, "provenance": {}}, data)  # 180 training characters
    with pytest.raises(DataSourceError, match=r"2 \* data.seq_len = 200"):
        gutenberg.select(data, {**arrays, "meta": {**extra, "dataset": "gutenberg"}})


def test_a_failing_build_leaves_no_entry_and_no_lock(isolated_root, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module, "prepare", disk_full)
    with pytest.raises(OSError):
        ensure_prepared(book_cfg("data.window=12"))
    assert listing(isolated_root / "data" / "cache") == []


# --- a download is checked for what it must be --------------------------------------------------


def remote(httpserver, path: str = "/book.txt", **overrides):
    return dataset_config("gutenberg", {"source": "remote", "retries": 0, "timeout": 5.0,
                                        "url_template": httpserver.url_for(path) + "?id={id}",
                                        "fallback_templates": [], **overrides})


@pytest.mark.parametrize("body, content_type", [
    (HTML, "text/html; charset=utf-8"),
    (HTML, "text/plain"),              # a page that says it is text: the body gives it away
    (b"Please try again later.\n", "text/html"),  # the header gives it away
], ids=["html-page", "html-body-as-text-plain", "text-html-header"])
def test_an_html_page_served_as_the_book_is_refused(httpserver, tmp_path, body, content_type):
    httpserver.expect_request("/book.txt").respond_with_data(body, content_type=content_type)
    data = remote(httpserver)
    with pytest.raises(DataSourceError) as caught:
        gutenberg.fetch_to(tmp_path, data, seed=0)
    message = str(caught.value)
    assert httpserver.url_for("/book.txt") in message and "HTML page" in message
    assert list(tmp_path.iterdir()) == []


def test_an_html_page_moves_on_to_the_fallback(httpserver, tmp_path):
    httpserver.expect_request("/mirror.txt").respond_with_data(HTML, content_type="text/html")
    httpserver.expect_request("/book.txt").respond_with_data(BOOK, content_type="text/plain; charset=utf-8")
    data = remote(httpserver, "/mirror.txt", fallback_templates=[httpserver.url_for("/book.txt") + "?id={id}"])
    provenance = gutenberg.fetch_to(tmp_path, data, seed=0)
    assert provenance["url"].startswith(httpserver.url_for("/book.txt"))
    assert gutenberg.read_raw(tmp_path)["text"].startswith("alice was beginning")


def test_a_pinned_sha256_is_enforced(httpserver, tmp_path):
    httpserver.expect_request("/book.txt").respond_with_data(BOOK, content_type="text/plain")
    right, wrong = hashlib.sha256(BOOK).hexdigest(), "0" * 64
    with pytest.raises(DataSourceError) as caught:
        gutenberg.fetch_to(tmp_path, remote(httpserver, sha256=wrong), seed=0)
    assert right in str(caught.value) and wrong in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    provenance = gutenberg.fetch_to(tmp_path, remote(httpserver, sha256=right), seed=0)
    assert provenance["original_sha256"] == right


def test_a_pinned_sha256_is_enforced_for_a_local_file_too(tmp_path):
    book = tmp_path / "book.txt"
    book.write_bytes(BOOK)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataSourceError, match=hashlib.sha256(BOOK).hexdigest()):
        gutenberg.fetch_to(out, dataset_config("gutenberg", {"source": "local", "path": str(book),
                                                             "sha256": "ab" * 32}), seed=0)
    assert list(out.iterdir()) == []


def test_data_sha256_is_null_by_default_and_checked_for_its_form():
    assert compose(["experiment=textgen_lstm"]).data.sha256 is None
    with pytest.raises(ConfigError, match=r"^data\.sha256='abc' is invalid"):
        compose(["experiment=textgen_lstm", "data.sha256=abc"])


@pytest.mark.parametrize("override, key", [
    ("data.url_template='http://www.gutenberg.org/cache/epub/{id}/pg{id}.txt'", "data.url_template"),
    ("data.url_template='ftp://www.gutenberg.org/{id}.txt'", "data.url_template"),
    ("data.fallback_templates=['http://www.gutenberg.org/files/{id}/{id}-0.txt']", "data.fallback_templates"),
])
def test_a_plain_http_url_is_a_config_error(override, key):
    with pytest.raises(ConfigError, match=rf"^{key}=.*https://"):
        compose(["experiment=textgen_lstm", override])


def test_plain_http_is_accepted_for_a_local_test_server_only():
    from rnnlab.data.download import download, url_problem

    assert url_problem("http://127.0.0.1:8080/book.txt") is None
    assert url_problem("http://localhost:8080/book.txt") is None
    assert url_problem("https://www.gutenberg.org/cache/epub/11/pg11.txt") is None
    assert "only https://" in url_problem("http://www.gutenberg.org/cache/epub/11/pg11.txt")
    with pytest.raises(DataSourceError, match="only https://"):  # the downloader refuses it too
        download(["http://example.org/book.txt"], Path("/nonexistent/book.txt"), timeout=1, max_bytes=10, retries=0)


# --- damaged or empty local files ---------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["imdb", "prices", "gutenberg"])
def test_an_empty_local_file_is_a_config_error(tmp_path, dataset):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"^data\.path=.*the file is empty"):
        compose([f"experiment={EXPERIMENT[dataset]}", "data.source=local", f"data.path={empty}"])


def npz_bytes(tmp_path: Path) -> bytes:
    io.write_npz(tmp_path / "x.npz", x=np.arange(1000))
    return (tmp_path / "x.npz").read_bytes()


@pytest.mark.parametrize("dataset, content, expected", [
    ("imdb", "binary", r"cannot read it as CSV|missing column"),
    ("imdb", b"text,label\n\"an unclosed quote,1\n", r"cannot read it as CSV|missing column|has no text|label"),
    ("prices", "binary", r"cannot read it as CSV|missing column"),
    ("prices", b"Date,Close\n2020-01-02,10.5\n2020-01-0", r"line 3 has a date that cannot be read"),  # cut short
    ("gutenberg", "binary", r"not valid UTF-8|NUL bytes"),
    ("gutenberg", b"   \n\n  \n", r"empty or only blank space"),
    ("gutenberg", HTML, r"is an HTML page"),
], ids=["imdb-binary", "imdb-truncated", "prices-binary", "prices-truncated", "gutenberg-binary",
        "gutenberg-blank", "gutenberg-html"])
def test_a_damaged_local_file_gets_a_clear_message(isolated_root, tmp_path, dataset, content, expected):
    path = tmp_path / "input.file"
    path.write_bytes(npz_bytes(tmp_path) if content == "binary" else content)
    cfg = compose([f"experiment={EXPERIMENT[dataset]}", "data.source=local", f"data.path={path}"])
    with pytest.raises(DataSourceError, match=expected) as caught:
        fetch(cfg)
    assert str(path) in str(caught.value)
    assert files(isolated_root / "data") == []


# --- bad input on the real command line ---------------------------------------------------------


def run_train(root: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`python -m rnnlab.train` in a bare project root (conf/ and dvc.yaml only), so that its data/
    and outputs/ start empty."""
    if not (root / "conf").exists():
        shutil.copytree(PROJECT / "conf", root / "conf")
        (root / "dvc.yaml").write_text("stages: {}\n")
    env = subprocess_env(PROJECT, MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlruns.db'}")
    return subprocess.run([sys.executable, "-m", "rnnlab.train", *overrides,
                           f"hydra.run.dir={root / 'outputs' / 'runs' / 'job'}"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def assert_one_clear_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for word in words:
        assert word in errors[0]


def test_a_bad_seed_stops_with_one_line_and_status_2(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    result = run_train(root, "experiment=textgen_lstm", "seed=-1")
    assert_one_clear_error(result, "seed=-1 is invalid", "[0, 2**32)")
    assert listing(root / "data") == []  # stopped before any data: no cache entry, no lock


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_must_fit_32_bits(seed):
    with pytest.raises(ConfigError, match=rf"^seed={seed} is invalid"):
        compose(["experiment=textgen_lstm", f"seed={seed}"])
    with pytest.raises(ConfigError, match=rf"^seed={seed} is invalid"):
        compose([f"seed={seed}"], config_name="gradient_study")
    assert compose(["experiment=textgen_lstm", f"seed={2**32 - 1}"]).seed == 2**32 - 1


def test_a_too_short_local_book_stops_with_one_line_and_caches_nothing(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("abcde\n")
    result = run_train(root, "experiment=textgen_lstm", "data.source=local", f"data.path={tiny}")
    assert_one_clear_error(result, "too short", str(tiny))
    assert listing(root / "data" / "cache") == [] and files(root / "data") == []


@pytest.mark.parametrize("overrides", [["seed=-1"], ["data.source=local", "data.path={tiny}"]],
                         ids=["config-error", "data-error"])
def test_a_rejected_run_leaves_no_empty_job_folder(tmp_path, overrides):
    root = tmp_path / "project"
    root.mkdir()
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("abcde\n")
    result = run_train(root, "experiment=textgen_lstm", *(o.format(tiny=tiny) for o in overrides))
    assert result.returncode == 2, result.stderr[-3000:]
    assert listing(root / "outputs" / "runs") == [], "an empty Hydra job folder was left behind"
    assert files(root / "data") == []
