"""The Gutenberg text source: the real Alice file, a download from a local server, offline, encodings."""

import logging
import re
import socket
from collections import Counter

import pytest
from omegaconf import OmegaConf

from rnnlab.config import compose, dataset_config
from rnnlab.data.fetch import fetch, load_raw
from rnnlab.data import samples
from rnnlab.data.datasets import DATASETS, gutenberg
from rnnlab.errors import ConfigError, DataSourceError

# A small file laid out as gutenberg.org serves one today: byte-order mark, CRLF, header, markers, license.
BOOK = ("\ufeffThe Project Gutenberg eBook of A Test Book\r\n"
        "This eBook is for the use of anyone anywhere in the United States.\r\n\r\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK A TEST BOOK ***\r\n\r\n\r\n"
        "A TEST BOOK\r\n\r\n"
        "CHAPTER I.\r\n‘Oh dear!’ said the White Rabbit.\r\n\r\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK A TEST BOOK ***\r\n\r\n"
        "Updated editions will replace the previous one. Project Gutenberg-tm License.\r\n")
BOOK_TEXT = "A TEST BOOK\n\nCHAPTER I.\n‘Oh dear!’ said the White Rabbit.\n"


def data_cfg(**overrides):
    return dataset_config("gutenberg", overrides)


def closed_port_url() -> str:
    """A URL on this machine where nothing listens: an unreachable host, offline or not."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{{id}}.txt"


def test_alice_loses_the_license_and_keeps_the_whole_book(alice_path, tmp_path):
    provenance = gutenberg.fetch_to(tmp_path, data_cfg(source="local", path=str(alice_path),
                                                      lowercase=False, ascii_only=False), seed=0)
    text = gutenberg.read_raw(tmp_path)["text"]
    assert text.startswith("ALICE’S ADVENTURES IN WONDERLAND\n\nLewis Carroll\n")
    assert text.endswith("and the happy summer days.\n\n              THE END\n")
    assert "project gutenberg" not in text.lower() and "*** END" not in text and "\r" not in text
    assert re.findall(r"^CHAPTER (\w+)\.", text, re.MULTILINE) == [
        "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
    # this copy has no start marker: its title page comes first
    assert provenance["markers"] == {"start": False, "end": True}
    assert provenance["source"] == "local" and provenance["synthetic"] is False
    assert provenance["path"] == str(alice_path.resolve()) and provenance["original_bytes"] == 180_432
    assert provenance["characters"] == len(text) and provenance["lines"] == text.count("\n")
    assert 3000 < provenance["lines"] < 3400  # the license (some 400 lines) is gone


def test_alice_by_default_is_lowercase_ascii_as_the_course_had_it(alice_path, tmp_path):
    gutenberg.fetch_to(tmp_path, data_cfg(source="local", path=str(alice_path)), seed=0)
    text = gutenberg.read_raw(tmp_path)["text"]
    assert text.startswith("alices adventures in wonderland\n")  # the curly apostrophe is dropped
    assert text.isascii() and text == text.lower()
    assert "oh dear! oh dear! i shall be late!" in text.replace("\n", " ")


def test_fetch_stage_with_a_local_book_through_compose(alice_path, isolated_root):
    cfg = compose(["experiment=imdb_lstm", "data=gutenberg", "data.source=local", f"data.path={alice_path}"])
    out = fetch(cfg)
    assert out == isolated_root / "data" / "raw" / "gutenberg"
    raw = load_raw(out)
    assert raw["provenance"]["dataset"] == "gutenberg"
    assert raw["provenance"]["characters"] == len(raw["text"])
    assert sorted(p.name for p in out.iterdir()) == ["provenance.json", "text.txt"]


def test_remote_downloads_through_the_fallback_and_strips(httpserver, tmp_path):
    httpserver.expect_request("/cache/epub/7/pg7.txt").respond_with_data("not here", status=404)
    httpserver.expect_request("/files/7/7-0.txt").respond_with_data(BOOK.encode("utf-8"))
    data = data_cfg(source="remote", book_id=7, retries=0, timeout=5.0, lowercase=False, ascii_only=False,
                    url_template=httpserver.url_for("/cache/epub/{id}/pg{id}.txt"),
                    fallback_templates=[httpserver.url_for("/files/{id}/{id}-0.txt")])
    provenance = gutenberg.fetch_to(tmp_path, data, seed=0)
    assert gutenberg.read_raw(tmp_path)["text"] == BOOK_TEXT
    assert provenance["url"] == httpserver.url_for("/files/7/7-0.txt")
    assert provenance["book_id"] == 7 and provenance["markers"] == {"start": True, "end": True}
    assert provenance["original_bytes"] == len(BOOK.encode("utf-8"))
    assert provenance["characters"] == len(BOOK_TEXT) and provenance["lines"] == 4
    assert [req.path for req, _ in httpserver.log] == ["/cache/epub/7/pg7.txt", "/files/7/7-0.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.txt"]  # the download itself is not kept


def test_auto_offline_falls_back_to_the_labelled_sample_with_a_warning(caplog, tmp_path):
    data = data_cfg(source="auto", url_template=closed_port_url(), fallback_templates=[], sample_chars=5000)
    with caplog.at_level(logging.WARNING):
        provenance = gutenberg.fetch_to(tmp_path, data, seed=3)
    assert "SYNTHETIC SAMPLE" in caplog.text
    assert provenance["synthetic"] is True and provenance["label"] == samples.SYNTHETIC_LABEL
    assert provenance["requested_source"] == "auto" and "unreachable" in provenance["fallback_reason"]
    assert gutenberg.read_raw(tmp_path)["text"] == samples.synthetic_text(5000, seed=3).lower()


def test_remote_offline_fails_naming_the_host_and_the_fix(tmp_path):
    url = closed_port_url()
    with pytest.raises(DataSourceError, match="data.source=sample") as caught:
        gutenberg.fetch_to(tmp_path, data_cfg(source="remote", url_template=url, fallback_templates=[]), seed=0)
    assert url.split("/")[2] in str(caught.value) and "unreachable" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_latin1_file_needs_data_encoding(tmp_path):
    book = tmp_path / "old.txt"
    book.write_bytes("Le café de la gare.\n".encode("latin-1"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataSourceError, match=r"data.encoding=latin-1") as caught:
        gutenberg.fetch_to(out, data_cfg(source="local", path=str(book)), seed=0)
    assert str(book) in str(caught.value) and "0xe9" in str(caught.value)
    provenance = gutenberg.fetch_to(out, data_cfg(source="local", path=str(book), encoding="latin-1",
                                                  ascii_only=False), seed=0)
    assert gutenberg.read_raw(out)["text"] == "le café de la gare.\n"
    assert provenance["encoding"] == "latin-1"


def test_a_file_with_nothing_between_the_markers_is_refused(tmp_path):
    book = tmp_path / "empty.txt"
    book.write_text("Header\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\n"
                    "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nLicense\n")
    with pytest.raises(DataSourceError, match="no text is left"):
        gutenberg.fetch_to(tmp_path, data_cfg(source="local", path=str(book)), seed=0)


@pytest.mark.parametrize("text, expected, markers", [
    ("header\n*** START OF THIS PROJECT GUTENBERG EBOOK OLD ***\nbook\n"
     "*** END OF THIS PROJECT GUTENBERG EBOOK OLD ***\nlicense\n", "book\n", {"start": True, "end": True}),
    ("header\r\n***start of the project gutenberg ebook x***\r\nbook\r\n", "book\n", {"start": True, "end": False}),
    ("book\r\rmore\n\nEnd of the Project Gutenberg EBook of Book\n*** End of the Project Gutenberg EBook ***\nlicense",
     "book\n\nmore\n", {"start": False, "end": True}),
    ("just a text\nwith *** START OF inside a line\n", "just a text\nwith *** START OF inside a line\n",
     {"start": False, "end": False}),
])
def test_strip_gutenberg_finds_old_and_new_markers(text, expected, markers):
    assert gutenberg.strip_gutenberg(text) == (expected, markers)


def test_synthetic_text_is_deterministic_with_structure():
    text = samples.synthetic_text(20_000, seed=1)
    assert text == samples.synthetic_text(20_000, seed=1)
    assert text != samples.synthetic_text(20_000, seed=2)
    assert len(text) == 20_000 and len(samples.synthetic_text(123, seed=1)) == 123
    words = Counter(re.findall(r"[a-z]+", text.lower()))
    assert len(words) < 150 and words["the"] > 300  # a small vocabulary, repeated
    sentences = re.findall(r"[A-Z\"][^.!?]*[.!?]", text)
    assert len(sentences) > 300
    assert Counter(text)["."] > 150 and "\n\n" in text and "," in text
    assert max(len(line) for line in text.split("\n")) <= samples.LINE_WIDTH


def test_compose_validates_the_gutenberg_config_and_names_a_bad_key():
    assert "gutenberg" in DATASETS
    cfg = compose(["experiment=imdb_lstm", "data=gutenberg"])
    assert cfg.data.name == "gutenberg" and cfg.data.book_id == 11 and cfg.data.window == 10
    assert gutenberg.book_urls(cfg.data)[0] == "https://www.gutenberg.org/cache/epub/11/pg11.txt"
    with pytest.raises(ConfigError, match=r"^data\.window=0 is invalid"):
        compose(["experiment=imdb_lstm", "data=gutenberg", "data.window=0"])


@pytest.mark.parametrize("override, key", [
    ("data.step=0", "data.step"), ("data.test_fraction=1.0", "data.test_fraction"),
    ("data.timeout=0", "data.timeout"), ("data.max_bytes=0", "data.max_bytes"), ("data.retries=-1", "data.retries"),
    ("data.book_id=0", "data.book_id"), ("data.url_template=https://example.org/book.txt", "data.url_template"),
    ("data.encoding=no-such-codec", "data.encoding"),
])
def test_out_of_range_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}="):
        compose(["experiment=imdb_lstm", "data=gutenberg", override])
