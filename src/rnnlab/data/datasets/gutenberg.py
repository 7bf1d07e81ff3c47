"""A Project Gutenberg book as one text, for character-level models.

The course trained on Alice in Wonderland (book 11), lowercased and cut to ASCII.
A Gutenberg file wraps the book in a header and a long license; both are cut at
the "*** START OF" and "*** END OF" marker lines, so the model learns the book and
not the license. The text comes from gutenberg.org, a local file, or, offline, a
synthetic text from a small grammar (samples.synthetic_text).
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional
from urllib.parse import urlsplit

from omegaconf import MISSING

from rnnlab import io
from rnnlab.data import download
from rnnlab.data import samples
from rnnlab.errors import DataSourceError

log = logging.getLogger(__name__)

OTHER_SOURCES = "data.source=sample (synthetic text) or data.source=local data.path=<file.txt>"
# Only to tell "offline" from other failures before downloading; the download has its own timeout.
REACHABLE_TIMEOUT = 3.0

# A run of \r before \n is one line end: "\r\n" from Windows, and the "\r\r\r\n" of the
# course's copy of Alice, left by repeated conversions. A lone \r is an old Mac line end.
LINE_END = re.compile(r"\r+\n|\r")
START_MARKER = re.compile(r"^\*{3}\s*START OF\b.*$", re.IGNORECASE | re.MULTILINE)
END_MARKER = re.compile(r"^\*{3}\s*END OF\b.*$", re.IGNORECASE | re.MULTILINE)
# "End of Project Gutenberg's Alice's ..." / "End of the Project Gutenberg EBook of ...": boilerplate
# that closes the book just before the end marker.
TRAILER = re.compile(r"\s*end of (the )?project gutenberg", re.IGNORECASE)
LEADING_BLANK_LINES = re.compile(r"\A\s*\n")
SHA256 = re.compile(r"[0-9a-fA-F]{64}")


FRAMINGS = ("window", "sequence")


@dataclass
class Schema:
    """conf/data/gutenberg.yaml."""

    # Keys that only the prepare stage reads; every other key shapes what fetch writes.
    PREPARE_KEYS: ClassVar[tuple[str, ...]] = ("window", "step", "test_fraction")
    # Chosen per experiment from the one prepared text, so they are no part of its settings.
    SELECT_KEYS: ClassVar[tuple[str, ...]] = ("framing", "seq_len")

    name: str = MISSING
    source: str = MISSING
    path: Optional[str] = MISSING
    encoding: Optional[str] = MISSING
    book_id: int = MISSING
    url_template: str = MISSING
    fallback_templates: list[str] = MISSING
    timeout: float = MISSING
    max_bytes: int = MISSING
    retries: int = MISSING
    sha256: Optional[str] = MISSING
    lowercase: bool = MISSING
    ascii_only: bool = MISSING
    sample_chars: int = MISSING
    window: int = MISSING
    step: int = MISSING
    test_fraction: float = MISSING
    framing: str = MISSING
    seq_len: int = MISSING


def check(d: Any, require: Callable[[bool, str, Any, str], None]) -> None:
    """Range checks beyond the schema's types; `require(ok, key, value, rule)` raises ConfigError."""
    require(d.book_id > 0, "data.book_id", d.book_id, "must be a positive Gutenberg ebook number")
    require("{id}" in d.url_template, "data.url_template", d.url_template, "must contain {id}, the book_id")
    require(download.url_problem(d.url_template) is None, "data.url_template", d.url_template,
            "must be an https:// URL (plain http:// only for a test server on 127.0.0.1 or localhost)")
    for template in d.fallback_templates:
        require("{id}" in template, "data.fallback_templates", template, "each must contain {id}, the book_id")
        require(download.url_problem(template) is None, "data.fallback_templates", template,
                "each must be an https:// URL (plain http:// only for a test server on 127.0.0.1 or localhost)")
    require(d.sha256 is None or SHA256.fullmatch(str(d.sha256)) is not None, "data.sha256", d.sha256,
            "must be 64 hexadecimal digits (the sha256 of the book's file as served or as data.path), or null")
    require(d.timeout > 0, "data.timeout", d.timeout, "must be > 0 seconds")
    require(d.max_bytes > 0, "data.max_bytes", d.max_bytes, "must be a positive number of bytes")
    require(d.retries >= 0, "data.retries", d.retries, "must be >= 0")
    require(d.encoding is None or _is_codec(d.encoding), "data.encoding", d.encoding,
            "not an encoding Python knows; e.g. utf-8, latin-1, cp1252, or null for UTF-8")
    require(d.sample_chars > 0, "data.sample_chars", d.sample_chars, "must be a positive number of characters")
    require(d.window > 0, "data.window", d.window, "must be a positive integer")
    require(d.step > 0, "data.step", d.step, "must be a positive integer")
    require(0.0 < d.test_fraction < 1.0, "data.test_fraction", d.test_fraction, "must be in (0, 1)")
    require(d.framing in FRAMINGS, "data.framing", d.framing, f"choose one of {', '.join(FRAMINGS)}")
    require(d.seq_len > 1, "data.seq_len", d.seq_len, "must be at least 2 characters")


def fetch_to(folder: Path, data: Any, seed: int) -> dict[str, Any]:
    """Write text.txt (UTF-8, without Gutenberg's header and license); returns provenance."""
    if data.source == "sample":
        text, provenance = from_sample(data, seed)
    elif data.source == "local":
        text, provenance = from_file(Path(data.path), data.encoding, data.sha256)
    else:
        text, provenance = from_remote_or_sample(data, seed)
    text = clean(text, data.lowercase, data.ascii_only)
    if not text.strip():
        raise DataSourceError(f"no text is left from {provenance.get('url') or provenance.get('path')} after "
                              "removing the Gutenberg header and license; check that it is a book's text file.")
    io.write_text(folder / "text.txt", text)
    return {**provenance, "characters": len(text), "lines": text.count("\n"),
            "lowercase": data.lowercase, "ascii_only": data.ascii_only}


def read_raw(folder: Path) -> dict[str, Any]:
    """What fetch_to wrote: the whole text, byte for byte (read_text would translate line ends)."""
    return {"text": (folder / "text.txt").read_bytes().decode("utf-8")}


def strip_gutenberg(text: str) -> tuple[str, dict[str, bool]]:
    """The book without the header before "*** START OF" and the license after "*** END OF".

    A missing start marker keeps the text from its beginning, a missing end marker
    to its end; the dict says which markers were found. Line ends become "\\n".
    """
    text = LINE_END.sub("\n", text)
    start = START_MARKER.search(text)
    begin = start.end() if start else 0
    end = END_MARKER.search(text, begin)
    body = text[begin:end.start() if end else len(text)].rstrip()
    last_line = body.rfind("\n") + 1
    if TRAILER.match(body, last_line):
        body = body[:last_line].rstrip()
    return LEADING_BLANK_LINES.sub("", body) + "\n", {"start": start is not None, "end": end is not None}


def clean(text: str, lowercase: bool, ascii_only: bool) -> str:
    """The course's cleanup: fewer distinct characters for the model to predict."""
    if lowercase:
        text = text.lower()
    if ascii_only:
        # Drops curly quotes and accents outright ("alice’s" -> "alices"), as the course did.
        text = text.encode("ascii", "ignore").decode("ascii")
    return text


def book_urls(data: Any) -> list[str]:
    return [template.replace("{id}", str(data.book_id)) for template in [data.url_template, *data.fallback_templates]]


def from_remote_or_sample(data: Any, seed: int) -> tuple[str, dict[str, Any]]:
    """source=remote downloads or fails; source=auto falls back to the sample when offline."""
    urls = book_urls(data)
    hosts = {urlsplit(url).netloc: url for url in urls}
    if any(download.reachable(url, min(data.timeout, REACHABLE_TIMEOUT)) for url in hosts.values()):
        return from_remote(data, urls)
    reason = f"{', '.join(hosts)} unreachable (no network)"
    if data.source == "remote":
        raise DataSourceError(f"data.source=remote: cannot download Gutenberg book {data.book_id}: {reason}. "
                              f"Connect to the network, or use {OTHER_SOURCES}.")
    log.warning("Gutenberg: %s; using the SYNTHETIC SAMPLE instead. Set data.source=remote to fail instead, "
                "or data.source=local data.path=<file.txt> to use your own copy of the book.", reason)
    text, provenance = from_sample(data, seed)
    return text, {**provenance, "requested_source": "auto", "fallback_reason": reason}


def from_remote(data: Any, urls: list[str]) -> tuple[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / f"pg{data.book_id}.txt"
        got = download.download(urls, dest, timeout=data.timeout, max_bytes=data.max_bytes, retries=data.retries,
                                sha256=data.sha256, text=True)
        raw = dest.read_bytes()
    text, markers = strip_gutenberg(decode(raw, data.encoding, got["url"]))
    return text, {"source": "remote", "url": got["url"], "book_id": data.book_id, "markers": markers,
                  "encoding": data.encoding or "utf-8", "original_bytes": got["bytes"],
                  "original_sha256": got["sha256"], "synthetic": False}


def from_file(path: Path, encoding: Optional[str], sha256: Optional[str] = None) -> tuple[str, dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataSourceError(f"data.path={path}: cannot read it ({exc.strerror}). "
                              "Give the path of a text file.") from exc
    if not raw.strip():
        raise DataSourceError(f"data.path={path}: the file is empty or only blank space. "
                              "Give the path of a book's text file.")
    digest = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and digest != sha256.lower():
        raise DataSourceError(f"data.path={path}: sha256 {digest} differs from the expected data.sha256={sha256}; "
                              "nothing was written. Check the file, or set data.sha256 to its sha256 (or null).")
    if download.looks_like_html(raw[:512]):
        raise DataSourceError(f"data.path={path} is an HTML page, not a book's text file (it starts "
                              f"{raw[:40]!r}). Save the plain-text (.txt) version of the book.")
    text, markers = strip_gutenberg(decode(raw, encoding, f"data.path={path}"))
    return text, {"source": "local", "path": str(path.resolve()), "markers": markers,
                  "encoding": encoding or "utf-8", "original_bytes": len(raw),
                  "original_sha256": digest, "synthetic": False}


def from_sample(data: Any, seed: int) -> tuple[str, dict[str, Any]]:
    return samples.synthetic_text(data.sample_chars, seed), {
        "source": "sample", "synthetic": True, "label": samples.SYNTHETIC_LABEL, "markers": None,
        "generator": "rnnlab.data.samples.synthetic_text", "seed": seed}


def decode(raw: bytes, encoding: Optional[str], origin: str) -> str:
    """Strict decoding: a wrong encoding fails here rather than garbling the text the model learns."""
    try:
        text = raw.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"{origin} is not valid {encoding or 'UTF-8'} text (byte {raw[exc.start]:#04x} at offset {exc.start}). "
            "Set data.encoding to the file's encoding, e.g. data.encoding=latin-1 or data.encoding=cp1252."
        ) from exc
    if "\x00" in text:
        raise DataSourceError(f"{origin} holds NUL bytes (first at offset {text.index(chr(0))}): a binary file, "
                              "not a book's text. Give the path of a plain-text file.")
    return text.removeprefix("\ufeff")  # Gutenberg's UTF-8 files often begin with a byte-order mark


def _is_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
        return True
    except LookupError:
        return False


def prepare(raw: dict[str, Any], data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The last test_fraction held out, a vocabulary from the rest.

    Only ids are stored; OneHotWindows cuts the windows and one-hot encodes them per batch.
    """
    from rnnlab.data.prepare import CharVocabulary

    text = raw["text"]
    origin = raw.get("provenance", {}).get("url") or raw.get("provenance", {}).get("path") or "the fetched text"
    check_length(len(text), data, origin)
    split = int(round(len(text) * (1 - data.test_fraction)))
    vocab = CharVocabulary.from_text(text[:split])
    ids_train, ids_test = vocab.encode(text[:split]), vocab.encode(text[split:])
    n_train = (len(ids_train) - data.window - 1) // data.step + 1
    n_test = len(ids_test) - data.window
    arrays = {"ids_train": ids_train, "ids_test": ids_test}
    extra = {"task": "next_char", "input_spec": {"kind": "onehot", "length": data.window, "features": vocab.size},
             "n_outputs": vocab.size, "vocabulary": vocab.to_dict(), "n_train": n_train, "n_test": n_test,
             "characters": {"train": len(ids_train), "test": len(ids_test)}}
    return arrays, extra


def check_length(characters: int, data: Any, origin: str) -> None:
    """A text too short for one window of `data.window` characters and its target in both the
    training part and the test part (the last test_fraction) stops here, before anything is written."""
    split = int(round(characters * (1 - data.test_fraction)))
    need = data.window + 1
    if split < need or characters - split < need:
        shortest = max(need, math.ceil(need / (1 - data.test_fraction)), math.ceil(need / data.test_fraction))
        raise DataSourceError(
            f"{origin}: a text of {characters} characters is too short: with data.window={data.window} and "
            f"data.test_fraction={data.test_fraction} its training part ({split}) and test part "
            f"({characters - split}) "
            f"each need at least {need} characters (one window and the character after it); it needs about "
            f"{shortest} characters. Use a longer text, or lower data.window.")


def select(data_cfg: Any, prepared: dict[str, Any]) -> dict[str, Any]:
    """The window framing reads the prepared windows as they are; the sequence framing reads
    chunks of seq_len ids, every position a target (task char_lm)."""
    if data_cfg.framing == "window":
        return prepared
    meta = prepared["meta"]
    seq_len = int(data_cfg.seq_len)
    if meta["characters"]["train"] < 2 * seq_len:
        raise DataSourceError(f"the training text has {meta['characters']['train']} characters; the sequence "
                              f"framing needs at least 2 * data.seq_len = {2 * seq_len}. Lower data.seq_len, "
                              "or use a longer text.")
    vocab_size = meta["input_spec"]["features"]
    n_test = meta["characters"]["test"] - meta["input_spec"]["length"]  # the window models' targets
    return {**prepared, "meta": {**meta, "task": "char_lm", "n_test": n_test,
                                 "input_spec": {"kind": "tokens", "length": int(data_cfg.seq_len), "vocab": vocab_size}}}
