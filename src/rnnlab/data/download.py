"""HTTPS downloads for the fetch stage: fallback URLs, retries, a size cap, a checksum.

Networks drop out and data hosts move files, so a download tries each URL in turn
and retries what may pass on a second try (timeouts, refused or reset connections,
5xx and 429 answers, a body cut short) with exponential backoff. A 404 or 410 is
not retried: that URL will not serve the file, so the next one is tried at once.
The file is written beside `dest` and renamed onto it only when complete and
checked, so a failed or interrupted download never leaves a partial file. On a terminal
(stderr a TTY) a progress bar (rich) shows each download; in DVC's and CI's logs, none.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import requests
import tenacity

from rnnlab import io
from rnnlab.errors import DataSourceError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16
FIX = ("Check the network and the URL, or use data.source=sample (synthetic data) "
       "or data.source=local data.path=<file> (a copy you downloaded yourself).")
# Plain http:// is accepted only for these hosts: a test server on this machine (pytest-httpserver
# listens on http://127.0.0.1). Every other URL must be https://.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# What an HTML page begins with (after a byte-order mark and blank space): a host's error or login page.
HTML_STARTS = (b"<!doctype html", b"<html")
HTML_TYPES = ("text/html", "application/xhtml+xml")


def url_problem(url: str) -> str | None:
    """Why `url` may not be downloaded from (not https://, nor http:// to a loopback host), or None."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return None
    return (f"{url}: only https:// URLs are accepted (plain http:// only for a test server on "
            f"{', '.join(LOOPBACK_HOSTS)})")


def looks_like_html(head: bytes) -> bool:
    """Whether a body that should be a text file begins as an HTML page does."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(HTML_STARTS)


class _Transient(Exception):
    """A failure that may pass: worth another try of the same URL."""


class _Unavailable(Exception):
    """This URL does not serve the file (404, 410, other 4xx): try the next URL."""


def download(urls: list[str], dest: Path, *, timeout: float, max_bytes: int, retries: int,
             sha256: str | None = None, backoff_seconds: float = 1.0, text: bool = False) -> dict[str, Any]:
    """Download the first of `urls` that works onto `dest`; returns {url, bytes, sha256}.

    Each URL gets `retries` more tries after a transient failure, waiting
    backoff_seconds, then twice that, and so on. A file over `max_bytes` or with
    another sha256 than the one given is refused at once: another URL of the same
    file would not fix it. With text=True an HTML page (Content-Type text/html, or a
    body starting <!DOCTYPE html / <html) is refused as that URL's failure. Only
    https:// URLs are accepted (see url_problem). Any failure raises DataSourceError
    naming the URL(s).
    """
    if not urls:
        raise ValueError("download needs at least one URL")
    refused = [problem for problem in map(url_problem, urls) if problem]
    if refused:
        raise DataSourceError("; ".join(refused) + ".")
    dest = Path(dest)
    failures = []
    for url in urls:
        try:
            result = _download_with_retries(url, dest, timeout, max_bytes, retries, sha256, backoff_seconds, text)
        except (_Transient, _Unavailable) as exc:
            log.warning("download: %s failed: %s", url, exc)
            failures.append(f"{url} ({exc})")
            continue
        log.info("downloaded %s (%d bytes) -> %s", url, result["bytes"], dest)
        return result
    raise DataSourceError(f"cannot download {dest.name}: {'; '.join(failures)}. {FIX}")


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the URL's host opens: tells "offline" from other failures."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _download_with_retries(url: str, dest: Path, timeout: float, max_bytes: int, retries: int,
                           sha256: str | None, backoff_seconds: float, text: bool = False) -> dict[str, Any]:
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(_Transient),
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_exponential(multiplier=backoff_seconds, max=60 * backoff_seconds),
        before_sleep=lambda state: log.warning("download: %s: %s; try %d of %d", url, state.outcome.exception(),
                                               state.attempt_number + 1, retries + 1),
        reraise=True,
    )
    with io.atomic_path(dest) as tmp:
        size, digest = retrying(_get, url, tmp, timeout, max_bytes, text)
        if sha256 is not None and digest != sha256.lower():
            raise DataSourceError(f"{url}: sha256 {digest} differs from the expected {sha256}; the file was "
                                  f"not kept. Check the expected checksum, or the file may have changed. {FIX}")
    return {"url": url, "bytes": size, "sha256": digest}


def _get(url: str, tmp: Path, timeout: float, max_bytes: int, text: bool = False) -> tuple[int, str]:
    """One try: stream the body into `tmp`; returns its size and sha256. text=True refuses an HTML page."""
    digest, size, declared = hashlib.sha256(), 0, None
    try:
        # identity: the bytes on disk are the bytes counted against Content-Length and max_bytes.
        with requests.get(url, stream=True, timeout=timeout, headers={"Accept-Encoding": "identity"}) as response:
            _check_status(response)
            declared = response.headers.get("Content-Length")
            if declared is not None and int(declared) > max_bytes:
                raise _too_big(url, max_bytes, f"it declares {int(declared)} bytes")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if text and kind in HTML_TYPES:
                raise _Unavailable(f"it served an HTML page (Content-Type {kind}), not the text file")
            with open(tmp, "wb") as fh, progress_bar(url, int(declared) if declared else None) as advance:
                for chunk in response.iter_content(CHUNK_BYTES):
                    if text and size == 0 and looks_like_html(chunk[:512]):
                        raise _Unavailable(f"it served an HTML page (the body starts {chunk[:40]!r}), "
                                           "not the text file")
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_big(url, max_bytes, f"more than {max_bytes} bytes arrived")
                    digest.update(chunk)
                    fh.write(chunk)
                    advance(len(chunk))
    except requests.Timeout as exc:
        raise _Transient(f"no answer within {timeout} s") from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        # urllib3 raises this when the connection closes before Content-Length bytes came.
        raise _Transient(f"body cut short: the connection closed before the {declared} bytes announced") from exc
    except requests.ConnectionError as exc:
        raise _Transient(f"connection failed: {_short(exc)}") from exc
    if declared is not None and size < int(declared):  # urllib3 < 2 does not check Content-Length itself
        raise _Transient(f"body cut short: {size} of {int(declared)} bytes")
    return size, digest.hexdigest()


@contextlib.contextmanager
def progress_bar(url: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """`advance(n_bytes)` for one download: a bar on stderr when it is a terminal, else nothing."""
    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    name = urlsplit(url).path.rsplit("/", 1)[-1] or url
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=Console(file=sys.stderr)) as progress:
        task = progress.add_task(f"downloading {name}", total=total)
        yield lambda n: progress.advance(task, n)


def _check_status(response: requests.Response) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise _Transient(f"HTTP {status} {response.reason}")
    if status >= 300:
        raise _Unavailable(f"HTTP {status} {response.reason}")


def _too_big(url: str, max_bytes: int, what: str) -> DataSourceError:
    return DataSourceError(f"{url}: the download exceeds data.max_bytes={max_bytes} ({what}); stopped and "
                           "removed. Raise data.max_bytes if the file is right, or check the URL.")


def _short(exc: BaseException) -> str:
    """requests' messages nest urllib3's reprs and can run long; keep the error message to one line's worth."""
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
