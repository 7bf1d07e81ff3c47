"""The downloader against a real HTTP server on 127.0.0.1 (pytest-httpserver)."""

import hashlib
import threading
import time

import pytest
from werkzeug import Response

from rnnlab.data.download import download, reachable
from rnnlab.errors import DataSourceError

BODY = b"The quick brown fox jumps over the lazy dog.\n" * 200
FAST = {"timeout": 2.0, "max_bytes": 1_000_000, "retries": 2, "backoff_seconds": 0.01}


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_success_returns_content_size_and_sha256(httpserver, tmp_path):
    httpserver.expect_request("/book.txt").respond_with_data(BODY)
    dest = tmp_path / "book.txt"
    result = download([httpserver.url_for("/book.txt")], dest, **FAST)
    assert dest.read_bytes() == BODY
    assert result == {"url": httpserver.url_for("/book.txt"), "bytes": len(BODY),
                      "sha256": hashlib.sha256(BODY).hexdigest()}
    assert leftovers(tmp_path) == ["book.txt"]


def test_a_503_is_retried(httpserver, tmp_path):
    httpserver.expect_oneshot_request("/book.txt").respond_with_data("busy", status=503)
    httpserver.expect_request("/book.txt").respond_with_data(BODY)
    download([httpserver.url_for("/book.txt")], tmp_path / "book.txt", **FAST)
    assert (tmp_path / "book.txt").read_bytes() == BODY
    assert [req.path for req, _ in httpserver.log] == ["/book.txt", "/book.txt"]
    assert [resp.status_code for _, resp in httpserver.log] == [503, 200]


def test_a_429_is_retried_too(httpserver, tmp_path):
    httpserver.expect_oneshot_request("/book.txt").respond_with_data("slow down", status=429)
    httpserver.expect_request("/book.txt").respond_with_data(BODY)
    download([httpserver.url_for("/book.txt")], tmp_path / "book.txt", **FAST)
    assert len(httpserver.log) == 2


def test_a_server_that_never_answers_in_time_is_retried_then_named(httpserver, tmp_path):
    release = threading.Event()

    def slow(request):
        release.wait(5)  # held until the client has given up, so no answer outlives this test
        return Response(BODY)

    httpserver.expect_request("/slow.txt").respond_with_handler(slow)
    url = httpserver.url_for("/slow.txt")
    started = time.monotonic()
    with pytest.raises(DataSourceError) as caught:
        download([url], tmp_path / "book.txt", **{**FAST, "timeout": 0.2, "retries": 1})
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert url in message and "no answer within 0.2 s" in message and "data.source=sample" in message
    release.set()
    deadline = time.monotonic() + 5
    while len(httpserver.log) < 2 and time.monotonic() < deadline:  # the server answers one request at a time
        time.sleep(0.01)
    assert len(httpserver.log) == 2
    assert leftovers(tmp_path) == []


def test_a_body_shorter_than_its_content_length_is_retried_and_nothing_is_left(httpserver, tmp_path):
    cut = Response(BODY[:100])
    cut.headers["Content-Length"] = str(len(BODY))  # after construction, which sets the true length
    httpserver.expect_request("/cut.txt").respond_with_response(cut)
    dest = tmp_path / "book.txt"
    with pytest.raises(DataSourceError, match=rf"cut.txt \(body cut short: .* {len(BODY)} bytes"):
        download([httpserver.url_for("/cut.txt")], dest, **FAST)
    assert len(httpserver.log) == 3  # the first try and two retries
    assert leftovers(tmp_path) == []


def test_a_sha256_mismatch_keeps_nothing(httpserver, tmp_path):
    httpserver.expect_request("/book.txt").respond_with_data(BODY)
    (tmp_path / "book.txt").write_bytes(b"the previous version")
    with pytest.raises(DataSourceError, match="sha256"):
        download([httpserver.url_for("/book.txt")], tmp_path / "book.txt", **FAST, sha256="0" * 64)
    assert leftovers(tmp_path) == ["book.txt"]
    assert (tmp_path / "book.txt").read_bytes() == b"the previous version"  # not replaced
    assert len(httpserver.log) == 1  # a wrong file is not downloaded again


def test_the_right_sha256_passes(httpserver, tmp_path):
    httpserver.expect_request("/book.txt").respond_with_data(BODY)
    download([httpserver.url_for("/book.txt")], tmp_path / "book.txt", **FAST,
             sha256=hashlib.sha256(BODY).hexdigest().upper())
    assert (tmp_path / "book.txt").read_bytes() == BODY


def test_a_404_moves_on_to_the_fallback_without_retrying(httpserver, tmp_path):
    httpserver.expect_request("/old.txt").respond_with_data("gone", status=404)
    httpserver.expect_request("/new.txt").respond_with_data(BODY)
    result = download([httpserver.url_for("/old.txt"), httpserver.url_for("/new.txt")], tmp_path / "b.txt", **FAST)
    assert result["url"] == httpserver.url_for("/new.txt")
    assert [req.path for req, _ in httpserver.log] == ["/old.txt", "/new.txt"]
    assert (tmp_path / "b.txt").read_bytes() == BODY


def test_404_and_410_everywhere_give_one_error_naming_each_url(httpserver, tmp_path):
    httpserver.expect_request("/a.txt").respond_with_data("no", status=404)
    httpserver.expect_request("/b.txt").respond_with_data("no", status=410)
    urls = [httpserver.url_for("/a.txt"), httpserver.url_for("/b.txt")]
    with pytest.raises(DataSourceError) as caught:
        download(urls, tmp_path / "book.txt", **FAST)
    message = str(caught.value)
    assert f"{urls[0]} (HTTP 404" in message and f"{urls[1]} (HTTP 410" in message
    assert "data.source=local" in message
    assert len(httpserver.log) == 2
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("declare_length", [True, False])
def test_max_bytes_stops_the_download(httpserver, tmp_path, declare_length):
    response = Response(BODY)
    if not declare_length:  # a server that streams without saying the size
        response = Response(iter([BODY[:4000], BODY[4000:]]))
    httpserver.expect_request("/big.txt").respond_with_response(response)
    with pytest.raises(DataSourceError, match=r"exceeds data.max_bytes=1000"):
        download([httpserver.url_for("/big.txt")], tmp_path / "book.txt", **{**FAST, "max_bytes": 1000})
    assert len(httpserver.log) == 1
    assert leftovers(tmp_path) == []


def test_a_refused_connection_is_retried_then_named(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/book.txt"
    with pytest.raises(DataSourceError, match="connection failed") as caught:
        download([url], tmp_path / "book.txt", **FAST)
    assert url in str(caught.value)
    assert not reachable(url)


def test_reachable_sees_a_listening_server(httpserver):
    assert reachable(httpserver.url_for("/"))


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
