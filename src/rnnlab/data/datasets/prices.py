"""Daily stock prices: Yahoo Finance through yfinance, a user's CSV, or a shipped sample.

The course predicts Facebook's price from the previous 40 days. Yahoo is the real
source, but it drops connections, rate-limits, renames tickers (FB is META since
2022) and answers an unknown ticker with an empty frame, so every failure here
ends in one DataSourceError that names the ticker, the range and the fix, and
nothing is written unless real rows came back. Offline, `auto` falls back to real
GOOG prices shipped inside the `backtesting` package (or, without it, a seeded
random walk), labelled as a sample in the provenance so no report mistakes it
for the configured ticker.

Every source ends in the same frame: a naive, sorted, de-duplicated date index
named Date and the OHLCV columns it has, plus `price_column`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Optional

import numpy as np
import pandas as pd
import tenacity

from omegaconf import MISSING

from rnnlab import io
from rnnlab.data import samples
from rnnlab.data import download
from rnnlab.errors import DataSourceError

log = logging.getLogger(__name__)

FILE = "prices.csv"
OHLCV = ("Open", "High", "Low", "Close", "Volume")
# yfinance's own list (PriceHistory.history's docstring); Yahoo rejects anything else.
INTERVALS = ("1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo")
SCALERS = ("minmax", "standard")
TARGETS = ("price", "log_return")
SAMPLES = ("GOOG", "synthetic")
# Yahoo symbols use letters, digits and . ^ = - (BRK-B, ^GSPC, EURUSD=X); nothing
# else gets through, so a ticker can never smuggle a path or a URL into a request.
TICKER = re.compile(r"^(?=.*[A-Za-z0-9])[A-Za-z0-9.^=-]{1,15}$")
YAHOO_HOST = "query2.finance.yahoo.com"
CHART_URL = "https://query2.finance.yahoo.com/v8/finance/chart/{ticker}"
# The span of backtesting's GOOG sample; the synthetic fallback uses the same days
# so that data.sample_test_start splits either sample the same way.
SAMPLE_FIRST, SAMPLE_LAST = "2004-08-19", "2013-03-01"


@dataclass
class Schema:
    """conf/data/prices.yaml."""

    # Keys that only the prepare stage reads; every other key shapes what fetch writes.
    PREPARE_KEYS: ClassVar[tuple[str, ...]] = ("window", "test_start", "sample_test_start", "scaler")
    # Chosen per experiment from the one prepared dataset (both targets are prepared).
    SELECT_KEYS: ClassVar[tuple[str, ...]] = ("target",)

    name: str = MISSING
    source: str = MISSING
    path: Optional[str] = MISSING
    ticker: str = MISSING
    start: str = MISSING
    end: str = MISSING
    interval: str = MISSING
    price_column: str = MISSING
    retries: int = MISSING
    retry_wait: float = MISSING
    sample: str = MISSING
    window: int = MISSING
    test_start: str = MISSING
    sample_test_start: str = MISSING
    scaler: str = MISSING
    target: str = MISSING


def check(d: Any, require: Callable[[bool, str, Any, str], None]) -> None:
    """Range checks beyond the schema's types; `require(ok, key, value, rule)` raises ConfigError."""
    require(bool(TICKER.match(d.ticker)), "data.ticker", d.ticker,
            "use a Yahoo symbol: 1-15 letters, digits or . ^ = - (e.g. META, BRK-B, ^GSPC)")
    dates = {key: _iso_date(d[key]) for key in ("start", "end", "test_start", "sample_test_start")}
    for key, parsed in dates.items():
        require(parsed is not None, f"data.{key}", d[key], "must be a date YYYY-MM-DD")
    require(dates["start"] < dates["end"], "data.end", d.end, f"must be after data.start={d.start}")
    if d.source in ("auto", "remote"):
        require(dates["start"] < dates["test_start"] <= dates["end"], "data.test_start", d.test_start,
                f"must fall after data.start={d.start} and by data.end={d.end}, or no rows are left to train or test on")
    require(d.interval in INTERVALS, "data.interval", d.interval, f"choose one of {', '.join(INTERVALS)}")
    require(bool(str(d.price_column).strip()), "data.price_column", d.price_column, "name a column, e.g. Close")
    require(d.retries >= 0, "data.retries", d.retries, "must be >= 0")
    require(d.retry_wait >= 0, "data.retry_wait", d.retry_wait, "must be >= 0 seconds")
    require(d.sample in SAMPLES, "data.sample", d.sample, f"choose one of {', '.join(SAMPLES)}")
    require(d.window > 0, "data.window", d.window, "must be a positive integer")
    require(d.scaler in SCALERS, "data.scaler", d.scaler, f"choose one of {', '.join(SCALERS)}")
    require(d.target in TARGETS, "data.target", d.target, f"choose one of {', '.join(TARGETS)}")


def fetch_to(folder: Path, data: Any, seed: int) -> dict[str, Any]:
    """Write prices.csv (Date, OHLCV, price column; sorted by date); returns provenance."""
    loaded = load(data, seed)
    # The file name is fixed: the ticker never becomes part of a path.
    io.write_text(folder / FILE, loaded.frame.to_csv(index_label="Date"))
    index = loaded.frame.index
    return {**loaded.provenance, "price_column": data.price_column, "rows": len(index),
            "first_date": index[0].date().isoformat(), "last_date": index[-1].date().isoformat(),
            "counts": {"rows": len(index)}}


def read_raw(folder: Path) -> dict[str, Any]:
    """What fetch_to wrote: {"prices": frame indexed by Date}."""
    return {"prices": pd.read_csv(folder / FILE, index_col="Date", parse_dates=["Date"])}


@dataclass(frozen=True)
class Prices:
    """A tidy frame (see `tidy`) and where it came from."""

    frame: pd.DataFrame
    provenance: dict[str, Any]


def load(data: Any, seed: int) -> Prices:
    """Prices from `data.source`: auto | remote | local | sample."""
    if data.source == "sample":
        return from_sample(data, seed)
    if data.source == "local":
        return from_csv(Path(data.path), data.price_column)
    if data.source == "remote":
        return from_yahoo(data)
    try:
        if not download.reachable(f"https://{YAHOO_HOST}/"):  # no network: no retries to wait through
            raise YahooUnreachable("offline", f"Yahoo Finance ({YAHOO_HOST}) is unreachable (no network)")
        return from_yahoo(data)
    except YahooUnreachable as exc:
        sample = from_sample(data, seed)
        log.warning("PRICES: %s; using the %s INSTEAD of %s. Set data.source=remote to fail instead, "
                    "or data.source=local data.path=<csv> to use your own prices.",
                    exc.reason, sample.provenance["label"].upper(), data.ticker)
        sample.provenance.update(requested_source="auto", fallback_reason=exc.reason)
        return sample


# --- Yahoo Finance ---------------------------------------------------------------------------

class YahooUnreachable(DataSourceError):
    """No connection to Yahoo after the retries: the one failure `auto` answers with the sample."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def from_yahoo(data: Any) -> Prices:
    """The configured ticker's prices from Yahoo, retried while Yahoo rate-limits or the line drops."""
    import yfinance
    from yfinance.exceptions import YFRateLimitError

    span = f"{data.ticker} from {data.start} to {data.end} (interval {data.interval})"
    attempts = data.retries + 1
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((YFRateLimitError, *_connection_errors())),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=data.retry_wait),
        before_sleep=lambda state: log.warning(
            "Yahoo Finance: attempt %d of %d for %s failed (%s); retrying in %.2f s", state.attempt_number,
            attempts, data.ticker, _short(state.outcome.exception()), state.next_action.sleep),
        reraise=True,
    )
    try:
        frame = retrying(_download, data)
    except YFRateLimitError as exc:
        raise DataSourceError(
            f"Yahoo Finance rate-limited the download of {span} on all {attempts} attempts. Wait a few "
            "minutes and rerun, raise data.retries, or use data.source=local data.path=<csv> or data.source=sample."
        ) from exc
    except _connection_errors() as exc:
        log.debug("Yahoo Finance connection failure: %s", exc)
        reason = f"Yahoo Finance ({YAHOO_HOST}) is unreachable ({type(exc).__name__})"
        raise YahooUnreachable(
            f"data.source=remote: {reason} after {attempts} attempts to download {span}. Connect to the "
            "network, or use data.source=sample (offline sample prices) or data.source=local data.path=<csv>.",
            reason,
        ) from exc
    except Exception as exc:  # yfinance raises many types for "no such data": YFException, HTTPError, KeyError
        raise _no_prices(span, f": {_short(exc)}") from exc
    frame = tidy(frame, data.price_column, f"Yahoo Finance {data.ticker}")
    if frame.empty:
        raise _no_prices(span, "")
    return Prices(frame, {
        "source": "remote", "ticker": data.ticker, "url": CHART_URL.format(ticker=data.ticker),
        "start": data.start, "end": data.end, "interval": data.interval, "auto_adjust": True,
        "yfinance_version": yfinance.__version__, "sample": False, "synthetic": False,
        "label": f"{data.ticker} prices from Yahoo Finance (split- and dividend-adjusted)",
    })


def _download(data: Any) -> pd.DataFrame:
    import yfinance

    with _yfinance_raises():
        # A fresh Ticker per attempt: a failed one keeps its failed time-zone look-up.
        return yfinance.Ticker(data.ticker).history(
            start=data.start, end=_next_day(data.end), interval=data.interval,
            # OHLC adjusted for splits and dividends; yfinance then drops its Adj Close column.
            auto_adjust=True, actions=False)


@contextlib.contextmanager
def _yfinance_raises() -> Iterator[None]:
    """By default yfinance logs a failed request and returns an empty frame; raising instead
    lets a dropped connection (retry) be told from an unknown ticker (stop)."""
    import yfinance

    saved = yfinance.config.debug.hide_exceptions
    yfinance.config.debug.hide_exceptions = False
    try:
        yield
    finally:
        yfinance.config.debug.hide_exceptions = saved


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Connection failures of both HTTP back ends that yfinance may use."""
    import requests

    errors: list[type[BaseException]] = [requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                                         ConnectionError, TimeoutError]
    try:
        from curl_cffi.requests import exceptions as curl
    except ImportError:
        return tuple(errors)
    return tuple(errors + [curl.ConnectionError, curl.Timeout])


def _no_prices(span: str, reason: str) -> DataSourceError:
    return DataSourceError(
        f"Yahoo Finance returned no prices for {span}{reason}. Check data.ticker (Facebook is META "
        "since 2022; delisted symbols return nothing) and data.start/data.end, or use data.source=local "
        "data.path=<csv> or data.source=sample."
    )


def _next_day(day: str) -> str:
    # data.end is the last day wanted; yfinance's end is exclusive.
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def _short(exc: BaseException | None) -> str:
    """The exception on one short line, without URL queries (they carry Yahoo's session crumb)."""
    text = str(exc).splitlines()[0] if exc is not None and str(exc) else ""
    text = re.sub(r"\?\S*", "", text)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- the shape every source ends in ----------------------------------------------------------

def tidy(frame: pd.DataFrame, price_column: str, origin: str) -> pd.DataFrame:
    """Plain column names, naive dates, sorted, one row per date, rows without a price dropped.

    Returns Date-indexed OHLCV columns present plus `price_column`; may be empty.
    """
    frame = _flatten_columns(frame, origin)
    if price_column not in frame.columns:
        raise DataSourceError(f"{origin}: no {price_column!r} column; found {[str(c) for c in frame.columns]}. "
                              "Set data.price_column to one of these.")
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        # Keep the exchange's own calendar day; converting to UTC would move Asian closes a day back.
        index = index.tz_localize(None)
    columns = [c for c in OHLCV if c in frame.columns] + ([price_column] if price_column not in OHLCV else [])
    frame = frame.set_axis(index.rename("Date"))[columns]
    frame = frame[frame[price_column].notna()].sort_index(kind="stable")
    return frame[~frame.index.duplicated(keep="first")]


def _flatten_columns(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    # yf.download returns (Price, Ticker) columns even for one ticker (since 0.2.47).
    if not isinstance(frame.columns, pd.MultiIndex):
        return frame
    price_level = next((i for i in range(frame.columns.nlevels)
                        if set(frame.columns.get_level_values(i)) & set(OHLCV)), None)
    other = [i for i in range(frame.columns.nlevels) if i != price_level]
    if price_level is None or any(frame.columns.get_level_values(i).nunique() > 1 for i in other):
        raise DataSourceError(f"{origin}: expected one ticker's price columns, got {list(frame.columns)}.")
    return frame.set_axis(frame.columns.get_level_values(price_level), axis=1)


# --- a local CSV -----------------------------------------------------------------------------

# "2020-01-02 00:00:00-05:00", as a frame from Ticker.history() saves: the offset is dropped
# so the date stays the exchange's, as for Yahoo's own frames above.
UTC_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?:Z|[+-]\d{2}:?\d{2})$")


def from_csv(path: Path, price_column: str) -> Prices:
    """yfinance's export (Date,Open,High,Low,Close,Adj Close,Volume) or any CSV with Date and `price_column`."""
    where = f"data.path={path}"
    if not path.is_file():
        raise DataSourceError(f"{where}: no such file. Give the path of a CSV with columns Date and {price_column}.")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"{where}: cannot read it as CSV ({_short(exc)}). Give a UTF-8 CSV with a header "
                              "row, e.g. yfinance's Date,Open,High,Low,Close,Adj Close,Volume.") from exc
    missing = [c for c in ("Date", price_column) if c not in raw.columns]
    if missing:
        raise DataSourceError(f"{where}: missing column(s) {missing}; found {list(raw.columns)}. The CSV needs "
                              f"a Date column and the price column data.price_column={price_column}.")
    if raw.empty:
        raise DataSourceError(f"{where}: a header but no rows of prices.")
    dates = _parse_dates(raw["Date"])
    _require_all(dates.notna(), raw["Date"], where, "a date that cannot be read (use YYYY-MM-DD)")
    prices = pd.to_numeric(raw[price_column], errors="coerce")
    _require_all(prices.notna(), raw[price_column], where, f"a {price_column} that is not a number")
    frame = raw.drop(columns="Date").assign(**{price_column: prices}).set_axis(pd.DatetimeIndex(dates), axis=0)
    for column in (set(OHLCV) & set(frame.columns)) - {price_column}:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    if frame.index.duplicated().any():
        log.warning("%s: %d repeated dates; keeping the first row of each", where, int(frame.index.duplicated().sum()))
    return Prices(tidy(frame, price_column, where),
                  {"source": "local", "path": str(path.resolve()), "sample": False, "synthetic": False,
                   "label": f"local CSV {path.name}"})


def _parse_dates(column: pd.Series) -> pd.Series:
    text = column.astype(str).str.strip().str.replace(UTC_OFFSET, r"\1", regex=True)
    return pd.to_datetime(text, errors="coerce")


def _require_all(ok: pd.Series, values: pd.Series, where: str, what: str) -> None:
    if not ok.all():
        first = int(np.flatnonzero(~ok.to_numpy())[0])
        # +2: one for the header line, one because lines count from 1.
        value = values.iloc[first]
        shown = "an empty or null cell" if pd.isna(value) else repr(value)
        raise DataSourceError(f"{where}: line {first + 2} has {what}: {shown}.")


# --- samples ---------------------------------------------------------------------------------

def from_sample(data: Any, seed: int) -> Prices:
    """Real GOOG prices shipped with `backtesting`, or a seeded random walk where it is missing."""
    if data.sample == "GOOG":
        try:
            from backtesting.test import GOOG
        except ImportError:
            log.warning("PRICES: the backtesting package (data.sample=GOOG) is not installed; using a "
                        "SYNTHETIC random walk instead. pip install backtesting for real sample prices.")
        else:
            frame = tidy(GOOG.copy(), data.price_column, "the backtesting package's GOOG sample")
            first, last = frame.index[0].year, frame.index[-1].year
            return Prices(frame, {
                "source": "sample", "ticker": "GOOG", "requested_ticker": data.ticker, "package": "backtesting",
                "backtesting_version": _version("backtesting"), "sample": True, "synthetic": False,
                "label": f"sample: GOOG daily prices {first}-{last} shipped with the backtesting package",
            })
    frame = tidy(synthetic_prices(seed), data.price_column, "the synthetic price sample")
    return Prices(frame, {
        "source": "sample", "requested_ticker": data.ticker, "generator": "rnnlab.data.datasets.prices.synthetic_prices",
        "seed": seed, "sample": True, "synthetic": True,
        "label": f"{samples.SYNTHETIC_LABEL}: geometric Brownian motion prices, not market data",
    })


def synthetic_prices(seed: int) -> pd.DataFrame:
    """Daily OHLCV from a geometric Brownian motion on business days; the same seed gives the same series."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(SAMPLE_FIRST, SAMPLE_LAST, name="Date")
    # Drift and volatility of a large stock: about 12 % a year, 1.8 % a day.
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0005, 0.018, len(days))))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0.0, 0.004, len(days)))
    spread = np.abs(rng.normal(0.0, 0.008, (2, len(days))))
    return pd.DataFrame({
        "Open": open_, "High": np.maximum(open_, close) * (1 + spread[0]),
        "Low": np.minimum(open_, close) * (1 - spread[1]), "Close": close,
        "Volume": rng.lognormal(15.0, 0.4, len(days)).astype(np.int64),
    }, index=days)


def _version(package: str) -> Optional[str]:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _iso_date(value: Any) -> Optional[dt.date]:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def prepare(raw: dict[str, Any], data: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Windows of `window` days and the next day as target, for both targets (`select` picks one):

    - price: prices scaled by a scaler fit on the training days (data.scaler);
    - log_return: log returns standardised on the training days; the price is rebuilt from the
      day before, so both are scored in price units.

    The test days are those from test_start on (sample_test_start for the offline sample);
    their first windows reach back into the last training days.
    """
    from rnnlab.data.prepare import fit_scaler, scaler_to_dict, sliding_windows, split_at_date, windows_from

    frame = raw["prices"]
    test_start = data.sample_test_start if raw["provenance"].get("sample") else data.test_start
    train_part, test_part = split_at_date(frame, test_start)
    if len(test_part) == 0 or len(train_part) <= data.window + 1:
        raise DataSourceError(
            f"prices from {frame.index[0].date()} to {frame.index[-1].date()}: splitting at {test_start} leaves "
            f"{len(train_part)} training and {len(test_part)} test days; the training part needs more than "
            f"data.window + 1 = {data.window + 1} days and the test part at least one. Set data.test_start "
            "(or use a file that covers both parts).")
    values = frame[data.price_column].to_numpy(dtype=np.float64)
    if np.any(values <= 0):
        raise DataSourceError(f"column {data.price_column} holds prices <= 0; log returns need positive prices.")
    split = len(train_part)
    arrays = {"y_test_raw": values[split:], "previous_test_raw": values[split - 1:-1],
              "t_test": np.arange(split, len(values))}

    scaler = fit_scaler(values[:split].reshape(-1, 1), data.scaler)
    scaled = scaler.transform(values.reshape(-1, 1)).astype(np.float32)
    x_train, y_train = sliding_windows(scaled[:split], data.window)
    x_test, y_test = windows_from(scaled, split, data.window)
    arrays.update(x_train_price=x_train, y_train_price=y_train, x_test_price=x_test, y_test_price=y_test)

    # returns[i] is the return into day i + 1; the return into the first test day is returns[split - 1].
    returns = np.diff(np.log(values))
    return_scaler = fit_scaler(returns[:split - 1].reshape(-1, 1), "standard")
    scaled_returns = return_scaler.transform(returns.reshape(-1, 1)).astype(np.float32)
    x_train, y_train = sliding_windows(scaled_returns[:split - 1], data.window)
    x_test, y_test = windows_from(scaled_returns, split - 1, data.window)
    arrays.update(x_train_log_return=x_train, y_train_log_return=y_train, x_test_log_return=x_test,
                  y_test_log_return=y_test)

    train_min, train_max = float(values[:split].min()), float(values[:split].max())
    outside = (values[split:] < train_min) | (values[split:] > train_max)
    extra = {"task": "regression", "input_spec": {"kind": "series", "length": data.window, "features": 1},
             "scalers": {"price": scaler_to_dict(scaler), "log_return": scaler_to_dict(return_scaler)},
             "time_label": "date", "test_dates": [str(d.date()) for d in test_part.index],
             "test_range": {"train_min": train_min, "train_max": train_max,
                            "test_min": float(values[split:].min()), "test_max": float(values[split:].max()),
                            "share_outside": float(outside.mean())}}
    return arrays, extra


def select(data_cfg: Any, prepared: dict[str, Any]) -> dict[str, Any]:
    """The windows and targets of data.target (price or log_return), with how to turn a
    prediction back into a price."""
    target = str(data_cfg.target)
    chosen = {key: prepared[f"{key}_{target}"] for key in ("x_train", "y_train", "x_test", "y_test")}
    meta = {**prepared["meta"], "target": target, "scaler": prepared["meta"]["scalers"][target]}
    return {**{k: v for k, v in prepared.items() if not k.endswith(("_price", "_log_return"))}, **chosen, "meta": meta}
