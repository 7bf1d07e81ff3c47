"""The prepared-data cache of Hydra runs and sweep jobs: data/cache/<dataset>-<digest>/.

`dvc repro` owns data/prepared/; a run outside DVC whose data settings differ from the
pipeline's builds its own copy here, once, and every later run with the same settings reuses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filelock import FileLock

from rnnlab import io, paths
from rnnlab.data.fetch import fetch
from rnnlab.data.prepare import config_digest, load_prepared, prepare


def ensure_prepared(cfg: Any) -> dict[str, Any]:
    """Prepared data for `cfg`, made once and reused (a Hydra run, every job of a sweep).

    The pipeline's data/prepared/<dataset> is used when its settings match; otherwise
    the data is built under data/cache/<dataset>-<settings digest>/, leaving the
    outputs that DVC tracks untouched. A lock keeps parallel jobs from building it twice.
    """
    digest = config_digest(cfg)
    pipeline = paths.prepared_dir(cfg.data.name)
    if _matches(pipeline, digest):
        return load_prepared(pipeline)
    cache = paths.cache_dir(cfg.data.name, digest)
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".lock")):
        if not _matches(cache / "prepared", digest):
            fetch(cfg, out=cache / "raw")
            prepare(cfg, raw_folder=cache / "raw", out=cache / "prepared")
    return load_prepared(cache / "prepared")


def _matches(folder: Path, digest: str) -> bool:
    meta = folder / "meta.json"
    return meta.is_file() and io.read_json(meta)["config_sha256"] == digest


