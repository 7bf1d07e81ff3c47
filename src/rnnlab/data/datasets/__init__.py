"""The datasets: one module each (conf/data/<name>.yaml), knowing that dataset end to end.

    Schema                      dataclass of its config keys (types only; the values live in
                                conf/data/<name>.yaml); PREPARE_KEYS names those only prepare reads
    check(data, require)        range checks, raising through `require` with the key and the fix
    fetch_to(folder, data, seed) -> provenance
                                writes the raw files into `folder` (a temporary directory that
                                replaces data/raw/<name>/ only when complete) and returns what to
                                record: source, url or path, counts, synthetic, ...
    read_raw(folder)            what fetch_to wrote, for the prepare stage
    prepare(raw, data) -> (arrays, extra meta)
                                model-ready arrays for arrays.npz, and meta naming the `task` and
                                the model's `input_spec` (see models/keras_recurrent.py)
    select(data, prepared)      optional: the part of the prepared data one experiment reads;
                                SELECT_KEYS names the keys that choose it (not settings of the data)
    examples(data, p_model, p_baseline)
                                optional: readable test items with both predictions, for the report

`data.source` is auto | remote | local | sample in every module.
"""

from __future__ import annotations

from typing import Any

from rnnlab.data.datasets import alphabet, gutenberg, imdb, long_memory, phrases, prices, sine

DATASETS = {"imdb": imdb, "gutenberg": gutenberg, "prices": prices, "sine": sine, "phrases": phrases,
            "alphabet": alphabet, "long_memory": long_memory}


def select(cfg: Any, prepared: dict[str, Any]) -> dict[str, Any]:
    """What experiment `cfg` reads of its dataset's prepared arrays: all of them, unless the
    dataset's module chooses (the alphabet's framing)."""
    module = DATASETS[prepared["meta"]["dataset"]]
    return module.select(cfg.data, prepared) if hasattr(module, "select") else prepared
