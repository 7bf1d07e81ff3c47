"""The prices source: a real CSV, Yahoo's chart API served on 127.0.0.1, and the samples.

Remote tests run yfinance's own code end to end (cookie, crumb, chart request, JSON
parsing, time zones, adjustment); only the far end of the wire is ours: a session
that sends every Yahoo URL to a local pytest-httpserver.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import numpy as np
import pandas as pd
import pytest
import requests
from omegaconf import OmegaConf
from werkzeug import Request, Response

from conftest import SHARED_DATA
from rnnlab.config import ConfigError, compose
from rnnlab.data import fetch
from rnnlab.config import dataset_config
from rnnlab.data.datasets import DATASETS, prices
from rnnlab.errors import DataSourceError

yf = pytest.importorskip("yfinance")

FB_TRAIN = SHARED_DATA / "FB_training_data.csv"
FB_TEST = SHARED_DATA / "FB_test_data.csv"


def data_cfg(**overrides):
    return dataset_config("prices", {"retry_wait": 0.01, **overrides})


def run_cfg(**data):
    return OmegaConf.create({"seed": 0, "data": data_cfg(**data)})


def shared(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} is not here (CI and sessions have ../shared beside the project)")
    return path


# --- configuration ---------------------------------------------------------------------------

def test_prices_is_registered_and_composes_with_its_defaults():
    assert DATASETS["prices"] is prices
    d = compose(["experiment=imdb_lstm", "data=prices"]).data
    assert (d.ticker, d.start, d.end, d.interval, d.price_column) == ("META", "2015-01-01", "2020-01-31", "1d", "Close")
    assert (d.window, d.test_start, d.scaler) == (40, "2020-01-01", "minmax")
    assert set(prices.Schema.PREPARE_KEYS) == {"window", "test_start", "sample_test_start", "scaler"}


@pytest.mark.parametrize("override, key", [
    ("data.ticker=../../etc", "data.ticker"),
    ("data.ticker=META/../x", "data.ticker"),
    ("data.ticker=..", "data.ticker"),
    ("data.end=2014-12-31", "data.end"),
    ("data.start=2015-02-30", "data.start"),
    ("data.interval=2d", "data.interval"),
    ("data.window=0", "data.window"),
    ("data.scaler=robust", "data.scaler"),
    ("data.sample=AAPL", "data.sample"),
    ("data.test_start=2021-01-01", "data.test_start"),
])
def test_bad_settings_are_config_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        compose(["experiment=imdb_lstm", "data=prices", override])


# --- local CSV -------------------------------------------------------------------------------

def test_course_training_csv_as_local_source_round_trips(isolated_root):
    path = shared(FB_TRAIN)
    cfg = compose(["experiment=imdb_lstm", "data=prices", "data.source=local", f"data.path={path}"])
    folder = fetch.fetch(cfg)
    raw = fetch.load_raw(folder)
    frame, provenance = raw["prices"], raw["provenance"]

    assert len(frame) == 1258
    assert frame.index[0] == pd.Timestamp("2015-01-02") and frame.index[-1] == pd.Timestamp("2019-12-31")
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    original = pd.read_csv(path)
    np.testing.assert_array_equal(frame["Close"].to_numpy(), original["Close"].to_numpy())  # exact, not close
    np.testing.assert_array_equal(frame["Volume"].to_numpy(), original["Volume"].to_numpy())
    assert provenance["source"] == "local" and provenance["path"] == str(path.resolve())
    assert (provenance["rows"], provenance["first_date"], provenance["last_date"]) == (1258, "2015-01-02", "2019-12-31")
    assert provenance["sample"] is False and provenance["synthetic"] is False
    assert sorted(p.name for p in folder.iterdir()) == ["prices.csv", "provenance.json"]


def test_local_csv_in_any_layout_is_sorted_deduplicated_and_keeps_exchange_dates(tmp_path, caplog):
    csv = tmp_path / "mine.csv"
    # Saved from Ticker.history(): offsets change with daylight saving; out of order; one date twice.
    csv.write_text("Date,Price,Note\n"
                   "2020-03-09 00:00:00-04:00,3.5,b\n"
                   "2020-03-06 00:00:00-05:00,2.0,a\n"
                   "2020-03-09 00:00:00-04:00,9.9,dup\n"
                   "2020-03-10 00:00:00-04:00,4,c\n")
    with caplog.at_level(logging.WARNING):
        loaded = prices.from_csv(csv, "Price")
    assert "1 repeated dates" in caplog.text
    assert list(loaded.frame.index.strftime("%Y-%m-%d")) == ["2020-03-06", "2020-03-09", "2020-03-10"]
    assert loaded.frame["Price"].tolist() == [2.0, 3.5, 4.0]
    assert list(loaded.frame.columns) == ["Price"]


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("", "cannot read it as CSV"),
    ("Date,Close\n", "a header but no rows"),
    ("Day,Close\n2020-01-02,1.0\n", r"missing column\(s\) \['Date'\]; found \['Day', 'Close'\]"),
    ("Date,Open\n2020-01-02,1.0\n", r"missing column\(s\) \['Close'\]"),
    ("Date,Close\n2020-01-02,1.0\nnot a date,2.0\n", "line 3 has a date that cannot be read.*'not a date'"),
    ("Date,Close\n2020-01-02,1.0\n2020-01-03,1.5\n2020-01-06,abc\n", "line 4 has a Close that is not a number: 'abc'"),
    ("Date,Close\n2020-01-02,null\n", "line 2 has a Close that is not a number: an empty or null cell"),
])
def test_bad_local_files_get_a_clear_error(tmp_path, content, message):
    csv = tmp_path / "prices.csv"
    if content is not None:
        csv.write_text(content)
    with pytest.raises(DataSourceError, match=message) as err:
        prices.from_csv(csv, "Close")
    assert str(csv) in str(err.value) and "\n" not in str(err.value)


# --- Yahoo, served locally -------------------------------------------------------------------

class LocalYahoo(requests.Session):
    """A requests session that sends every Yahoo URL (fc., query1., query2., guce.) to `base`.

    The first `drops` price-history requests go to `dead` instead, where the connection is refused.
    """

    def __init__(self, base: str, dead: str = "", drops: int = 0) -> None:
        super().__init__()
        self.trust_env = False  # no proxies from the environment
        self.base, self.dead, self.drops = urlsplit(base), urlsplit(dead), drops

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        target = self.base
        if self.drops and "period1=" in (parts.query or urlencode(kwargs.get("params") or {})):
            self.drops -= 1
            target = self.dead
        return super().request(method, urlunsplit((target.scheme, target.netloc, parts.path, parts.query, "")),
                               *args, **kwargs)


def chart_json(rows: pd.DataFrame, symbol: str, adjust: float = 1.0) -> dict:
    """Yahoo's /v8/finance/chart answer for daily rows; stamps at 09:30 New York time, as Yahoo sends them."""
    stamps = (rows.index.tz_localize("America/New_York") + pd.Timedelta(hours=9, minutes=30)).tz_convert("UTC")
    nulls = lambda s: [None if pd.isna(v) else float(v) for v in s]  # noqa: E731
    return {"chart": {"error": None, "result": [{
        "meta": {"currency": "USD", "symbol": symbol, "exchangeName": "NMS", "instrumentType": "EQUITY",
                 "gmtoffset": -18000, "timezone": "EST", "exchangeTimezoneName": "America/New_York",
                 "priceHint": 2, "dataGranularity": "1d", "range": "",
                 "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]},
        "timestamp": [int(t.timestamp()) for t in stamps],
        "indicators": {"quote": [{"open": nulls(rows["Open"]), "high": nulls(rows["High"]), "low": nulls(rows["Low"]),
                                  "close": nulls(rows["Close"]), "volume": nulls(rows["Volume"])}],
                       "adjclose": [{"adjclose": nulls(rows["Close"] * adjust)}]},
    }]}}


NOT_FOUND = {"chart": {"result": None, "error": {"code": "Not Found",
                                                 "description": "No data found, symbol may be delisted"}}}


@pytest.fixture
def january_2020() -> pd.DataFrame:
    """The course's test month, plus the holiday Yahoo sends as a row of nulls (20 January)."""
    rows = pd.read_csv(shared(FB_TEST), index_col="Date", parse_dates=["Date"])
    holiday = pd.DataFrame(np.nan, index=pd.DatetimeIndex(["2020-01-20"]), columns=rows.columns)
    return pd.concat([rows, holiday]).sort_index()


@pytest.fixture
def yahoo(httpserver, monkeypatch):
    """Yahoo's hosts on 127.0.0.1 for yfinance, with its caches kept out of the user's home."""
    import yfinance.base
    import yfinance.cache
    import yfinance.data

    monkeypatch.setattr(yfinance.cache._TzCacheManager, "_tz_cache", yfinance.cache._TzCacheDummy())
    monkeypatch.setattr(yfinance.cache._CookieCacheManager, "_Cookie_cache", yfinance.cache._CookieCacheDummy())
    monkeypatch.setattr(yfinance.base, "_tz_info_fetch_ctr", 0)
    shared_data = yfinance.data.YfData()
    for attr in ("_session", "_cookie", "_crumb", "_cookie_strategy"):
        monkeypatch.setattr(shared_data, attr, getattr(shared_data, attr))
    shared_data._cookie, shared_data._crumb, shared_data._cookie_strategy = None, None, "basic"
    yfinance.data.YfData.cache_get.cache_clear()

    def use(base: str, **drops) -> LocalYahoo:
        session = LocalYahoo(base, **drops)
        yfinance.data.YfData(session=session)  # yfinance's one shared session, as yf.download sets it
        return session

    httpserver.expect_request("/").respond_with_data("", headers={"Set-Cookie": "A3=d=test; Path=/"})
    httpserver.expect_request("/v1/test/getcrumb").respond_with_data("test-crumb")
    httpserver.use = use
    use(httpserver.url_for("/"))
    yield httpserver
    yfinance.data.YfData.cache_get.cache_clear()


def not_found_otherwise(server) -> None:
    # Registered last: anything no test expects (consent pages, quoteSummary) gets Yahoo's 404.
    server.expect_request(re.compile(".*")).respond_with_json(NOT_FOUND, status=404)


def chart_requests(server, symbol: str) -> list[tuple[dict, int]]:
    return [(parse_qs(request.query_string.decode()), response.status_code)
            for request, response in server.log if request.path == f"/v8/finance/chart/{symbol}"]


def test_remote_download_through_yfinance(yahoo, isolated_root, january_2020):
    yahoo.expect_request("/v8/finance/chart/META").respond_with_json(chart_json(january_2020, "META", adjust=0.5))
    not_found_otherwise(yahoo)
    cfg = run_cfg(source="remote", start="2020-01-01", end="2020-01-31")

    raw = fetch.load_raw(fetch.fetch(cfg))
    frame, provenance = raw["prices"], raw["provenance"]

    course = pd.read_csv(FB_TEST, index_col="Date", parse_dates=["Date"])
    assert len(frame) == 21  # the holiday's nulls are dropped and 31 January is kept: data.end is inclusive
    assert frame.index.equals(pd.DatetimeIndex(course.index, name="Date"))  # naive calendar dates
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]  # auto_adjust: no Adj Close
    np.testing.assert_allclose(frame["Close"], course["Close"] * 0.5)  # Close is the adjusted close
    np.testing.assert_allclose(frame["Open"], course["Open"] * 0.5)
    assert frame["Volume"].tolist() == course["Volume"].tolist()
    history = [query for query, status in chart_requests(yahoo, "META") if "period2" in query]
    first_feb_new_york = pd.Timestamp("2020-02-01", tz="America/New_York").timestamp()
    assert history and int(history[0]["period2"][0]) == first_feb_new_york  # yfinance's end is exclusive
    assert provenance["source"] == "remote" and provenance["ticker"] == "META"
    assert provenance["url"] == "https://query2.finance.yahoo.com/v8/finance/chart/META"
    assert (provenance["rows"], provenance["first_date"], provenance["last_date"]) == (21, "2020-01-02", "2020-01-31")
    assert provenance["yfinance_version"] == yf.__version__
    assert provenance["sample"] is False and "Yahoo Finance" in provenance["label"]


def test_yf_download_multiindex_frame_is_flattened(yahoo, january_2020):
    yahoo.expect_request("/v8/finance/chart/META").respond_with_json(chart_json(january_2020, "META"))
    not_found_otherwise(yahoo)
    downloaded = yf.download("META", start="2020-01-01", end="2020-02-01", auto_adjust=True, progress=False,
                             threads=False, session=yahoo.use(yahoo.url_for("/")))
    assert isinstance(downloaded.columns, pd.MultiIndex)  # (Price, Ticker), even for one ticker

    frame = prices.tidy(downloaded, "Close", "yf.download")
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert len(frame) == 21 and frame.index[0] == pd.Timestamp("2020-01-02")


def test_frame_without_the_price_column_names_it_and_the_columns_found():
    frame = pd.DataFrame({"Open": [1.0], "Close": [2.0]}, index=pd.DatetimeIndex(["2020-01-02"]))
    with pytest.raises(DataSourceError, match=r"no 'Adj Close' column; found \['Open', 'Close'\]"):
        prices.tidy(frame, "Adj Close", "Yahoo Finance META")


@pytest.mark.parametrize("symbol, answer, status", [
    ("NOSUCH", NOT_FOUND, 404),  # unknown or delisted ticker
    ("META", {"chart": {"error": None, "result": [{"meta": {"symbol": "META", "exchangeTimezoneName":
              "America/New_York", "instrumentType": "EQUITY", "currency": "USD"},
              "indicators": {"quote": [{}], "adjclose": [{}]}}]}}, 200),  # no rows in the range
])
def test_no_prices_stop_naming_ticker_range_and_fix_and_write_nothing(yahoo, isolated_root, symbol, answer, status):
    yahoo.expect_request(f"/v8/finance/chart/{symbol}").respond_with_json(answer, status=status)
    not_found_otherwise(yahoo)
    cfg = run_cfg(source="remote", ticker=symbol, start="2020-01-01", end="2020-01-31")

    with pytest.raises(DataSourceError, match=f"no prices for {symbol} from 2020-01-01 to 2020-01-31") as err:
        fetch.fetch(cfg)
    assert "data.ticker" in str(err.value) and "\n" not in str(err.value)
    assert "crumb" not in str(err.value)  # yfinance's failing URL is shown without its query
    raw_root = isolated_root / "data" / "raw"
    assert not raw_root.exists() or list(raw_root.iterdir()) == []  # neither prices/ nor a temporary folder


@pytest.fixture
def closed_port() -> str:
    """A local address where nothing listens: connecting is refused, as offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_dropped_connection_is_retried_then_succeeds(yahoo, closed_port, january_2020, caplog):
    yahoo.expect_request("/v8/finance/chart/META").respond_with_json(chart_json(january_2020, "META"))
    not_found_otherwise(yahoo)
    yahoo.use(yahoo.url_for("/"), dead=closed_port, drops=1)
    with caplog.at_level(logging.WARNING, logger="rnnlab"):
        loaded = prices.load(data_cfg(source="remote", start="2020-01-01", end="2020-01-31"), seed=0)

    assert len(loaded.frame) == 21
    assert "attempt 1 of 4 for META failed (ConnectionError" in caplog.text
    assert len([q for q, _ in chart_requests(yahoo, "META") if "period1" in q]) == 1  # only the retry got through


def test_rate_limit_is_retried_then_succeeds(yahoo, january_2020, caplog):
    answers = iter([429, 429])  # yfinance retries once itself (other cookie strategy), then raises

    def chart(request: Request) -> Response:
        status = next(answers, 200)
        if status == 429:
            return Response("Too Many Requests", status=429)
        return Response(json.dumps(chart_json(january_2020, "META")), content_type="application/json")

    yahoo.expect_request("/v8/finance/chart/META").respond_with_handler(chart)
    not_found_otherwise(yahoo)
    with caplog.at_level(logging.WARNING, logger="rnnlab"):
        loaded = prices.load(data_cfg(source="remote", start="2020-01-01", end="2020-01-31", retries=2), seed=0)

    assert len(loaded.frame) == 21
    assert "attempt 1 of 3 for META failed (YFRateLimitError" in caplog.text
    statuses = [status for _, status in chart_requests(yahoo, "META")]
    assert statuses[:2] == [429, 429] and statuses[2:] == [200, 200]  # time zone, then the history


def test_persistent_rate_limit_fails_clearly_after_the_retries(yahoo, caplog):
    yahoo.expect_request("/v8/finance/chart/META").respond_with_data("Too Many Requests", status=429)
    not_found_otherwise(yahoo)
    with caplog.at_level(logging.WARNING, logger="rnnlab"), \
            pytest.raises(DataSourceError, match="rate-limited the download of META .* on all 3 attempts"):
        prices.load(data_cfg(source="remote", retries=2), seed=0)
    assert caplog.text.count("retrying in") == 2
    assert len(chart_requests(yahoo, "META")) >= 3




def test_remote_offline_fails_naming_the_fix(yahoo, closed_port, caplog):
    yahoo.use(closed_port)
    with caplog.at_level(logging.WARNING, logger="rnnlab"), pytest.raises(DataSourceError) as err:
        prices.load(data_cfg(source="remote", retries=1), seed=0)
    message = str(err.value)
    assert "query2.finance.yahoo.com) is unreachable" in message and "after 2 attempts" in message
    assert "data.source=sample" in message and "META from 2015-01-01 to 2020-01-31" in message
    assert "retrying" in caplog.text


def test_auto_offline_falls_back_to_the_labelled_sample_with_a_warning(yahoo, closed_port, isolated_root, caplog):
    yahoo.use(closed_port)
    with caplog.at_level(logging.WARNING):
        raw = fetch.load_raw(fetch.fetch(run_cfg(source="auto", retries=0)))
    provenance = raw["provenance"]
    assert provenance["sample"] is True and provenance["source"] == "sample"
    assert provenance["requested_source"] == "auto" and provenance["requested_ticker"] == "META"
    assert "unreachable" in provenance["fallback_reason"]
    assert f"using the {provenance['label'].upper()} INSTEAD of META" in caplog.text
    assert provenance["rows"] == len(raw["prices"]) > 2000
    assert provenance["first_date"] < "2013-01-01" < provenance["last_date"]  # data.sample_test_start splits it


# --- samples ---------------------------------------------------------------------------------

def test_goog_sample_is_backtestings_real_series_labelled_as_a_sample(tmp_path):
    GOOG = pytest.importorskip("backtesting.test").GOOG
    provenance = prices.fetch_to(tmp_path, data_cfg(source="sample"), seed=0)
    frame = prices.read_raw(tmp_path)["prices"]

    assert len(frame) == len(GOOG) == 2148
    np.testing.assert_array_equal(frame["Close"].to_numpy(), GOOG["Close"].to_numpy())
    assert (provenance["first_date"], provenance["last_date"]) == ("2004-08-19", "2013-03-01")
    assert provenance["label"] == "sample: GOOG daily prices 2004-2013 shipped with the backtesting package"
    assert provenance["sample"] is True and provenance["synthetic"] is False and provenance["ticker"] == "GOOG"
    test_rows = frame.loc[frame.index >= pd.Timestamp(data_cfg().sample_test_start)]
    assert len(test_rows) == 41  # January and February 2013 (and 1 March)


def test_without_backtesting_the_sample_is_a_labelled_seeded_random_walk(monkeypatch, caplog):
    for module in ("backtesting", "backtesting.test"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with caplog.at_level(logging.WARNING):
        first = prices.from_sample(data_cfg(source="sample"), seed=7)
    again = prices.from_sample(data_cfg(source="sample", sample="synthetic"), seed=7)
    other = prices.from_sample(data_cfg(source="sample", sample="synthetic"), seed=8)

    assert "not installed" in caplog.text
    assert first.provenance["synthetic"] is True and first.provenance["sample"] is True
    assert first.provenance["label"].startswith("synthetic sample")
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert not np.allclose(first.frame["Close"], other.frame["Close"])
    frame = first.frame
    assert (frame["High"] >= frame[["Open", "Close"]].max(axis=1)).all()
    assert (frame["Low"] <= frame[["Open", "Close"]].min(axis=1)).all() and (frame["Low"] > 0).all()
    assert frame.index[0] >= pd.Timestamp("2004-08-19") and frame.index[-1] <= pd.Timestamp("2013-03-01")


def test_yfinance_http_client_still_works_after_tensorflow_is_loaded():
    """A Hydra run imports TensorFlow before it fetches prices; curl_cffi must survive that."""
    import subprocess
    import sys

    code = ("import rnnlab, tensorflow\n"
            "from curl_cffi import requests\n"
            "try:\n"
            "    requests.Session(impersonate='chrome').get('http://127.0.0.1:9/', timeout=3)\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "ConnectionError"  # refused, not "ImpersonateError"
