"""The prepared-data cache of Hydra runs and sweep jobs: data/cache/<dataset>-<digest>/.

`dvc repro` owns data/prepared/; a run outside DVC whose data settings differ from the
pipeline's builds its own copy here, once, and every later run with the same settings reuses it.

An entry is data/cache/<dataset>-<digest>/ holding raw/, prepared/ and the .lock that keeps
parallel jobs from building it twice. It is built in a temporary folder beside it and renamed
into place only when fetch and prepare have both succeeded, and it is verified (the sha256 that
meta.json records) every time it is read: a changed or damaged entry is rebuilt once, with a
warning. A build that fails leaves nothing behind: no entry, no half-written folder, no lock.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from filelock import FileLock

from rnnlab import io, paths
from rnnlab.data.fetch import fetch
from rnnlab.data.prepare import PreparedDataError, config_digest, load_prepared, prepare
from rnnlab.errors import DataSourceError

log = logging.getLogger(__name__)


def ensure_prepared(cfg: Any) -> dict[str, Any]:
    """Prepared data for `cfg`, made once and reused (a Hydra run, every job of a sweep).

    The pipeline's data/prepared/<dataset> is used when its settings match (and it must then
    verify: a mismatch is the pipeline's to fix, with `dvc repro prepare@<dataset>`); otherwise
    the data is built under data/cache/<dataset>-<settings digest>/, leaving the outputs that
    DVC tracks untouched.
    """
    digest = config_digest(cfg)
    pipeline = paths.prepared_dir(cfg.data.name)
    if _matches(pipeline, digest):
        return load_prepared(pipeline)
    cache = paths.cache_dir(cfg.data.name, digest)
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".lock")):
        try:
            return _load_or_build(cfg, cache, digest)
        except BaseException:
            _discard(cache)  # still holding the lock, so no other job's build is removed
            raise


def _load_or_build(cfg: Any, cache: Path, digest: str) -> dict[str, Any]:
    prepared = cache / "prepared"
    if _matches(prepared, digest):
        try:
            return load_prepared(prepared)
        except PreparedDataError as exc:
            log.warning("the cached data does not verify; rebuilding it once: %s", exc)
    elif (prepared / "meta.json").is_file():
        log.warning("%s/meta.json cannot be read or is for other settings; rebuilding the entry", prepared)
    _build(cfg, cache)
    try:
        return load_prepared(prepared)
    except PreparedDataError as exc:
        raise DataSourceError(f"{cache} was rebuilt but still does not verify: {exc} Check the disk "
                              "(space, errors) and that nothing else writes under data/cache/.") from exc


def _build(cfg: Any, cache: Path) -> None:
    """fetch and prepare into a temporary folder inside `cache`; swap raw/ and prepared/ in when
    both succeeded (prepared/ last, since its meta.json is what marks the entry as built)."""
    cache.mkdir(parents=True, exist_ok=True)  # another job's failed build may have removed it meanwhile
    tmp = Path(tempfile.mkdtemp(prefix=".build.", suffix=".tmp", dir=cache))
    try:
        fetch(cfg, out=tmp / "raw")
        prepare(cfg, raw_folder=tmp / "raw", out=tmp / "prepared")
        for name in ("raw", "prepared"):
            io.replace_dir(tmp / name, cache / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _discard(cache: Path) -> None:
    """After a failed read or build: remove the entry, lock included, unless a verified entry is
    there (another job may have built it meanwhile)."""
    prepared = cache / "prepared"
    if (prepared / "meta.json").is_file():
        try:
            load_prepared(prepared)
            return
        except (PreparedDataError, FileNotFoundError):
            pass
    shutil.rmtree(cache, ignore_errors=True)
    log.debug("removed the unfinished cache entry %s", cache)


def _matches(folder: Path, digest: str) -> bool:
    meta = folder / "meta.json"
    try:
        return meta.is_file() and io.read_json(meta)["config_sha256"] == digest
    except (OSError, ValueError, KeyError, TypeError):
        return False
