"""DVC stage `fetch`: raw data from the configured source into data/raw/<dataset>/.

The dataset's source module writes its files; this stage adds provenance.json (source,
sha256 of what was written, counts, time, library versions) and swaps the folder in
only when everything is written.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rnnlab import io, paths
from rnnlab import cli
from rnnlab.config import load_resolved
from rnnlab.data.datasets import DATASETS

log = logging.getLogger(__name__)


def fetch(cfg: Any, out: Path | None = None) -> Path:
    """Fetch `cfg.data` (seeded by `cfg.seed`) atomically into `out`; returns the folder."""
    source = DATASETS[cfg.data.name]
    out = out or paths.raw_dir(cfg.data.name)
    with io.atomic_dir(out) as tmp:
        provenance = source.fetch_to(tmp, cfg.data, int(cfg.seed))
        provenance.update(
            dataset=cfg.data.name,
            sha256=io.sha256_dir(tmp),
            fetched_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            versions={"python": platform.python_version(),
                      **{pkg: version(pkg) for pkg in ("keras", "numpy", "pandas")}},
        )
        io.write_json(tmp / "provenance.json", provenance)
    log.info("fetched %s from %s -> %s", cfg.data.name, provenance["source"], out)
    return out


def load_raw(folder: Path) -> dict[str, Any]:
    """What the fetch stage wrote: the source's own files plus the provenance."""
    if not (folder / "provenance.json").is_file():
        raise FileNotFoundError(f"{folder} holds no fetched data; run `dvc repro fetch@{folder.name}` first.")
    provenance = io.read_json(folder / "provenance.json")
    return {**DATASETS[provenance["dataset"]].read_raw(folder), "provenance": provenance}


if __name__ == "__main__":
    cli.main(lambda resolved: fetch(load_resolved(resolved)), "DVC stage: fetch a dataset into data/raw/<dataset>/.")
