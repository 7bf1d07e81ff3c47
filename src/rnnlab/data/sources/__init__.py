"""Data sources. Each module serves one dataset (conf/data/<name>.yaml) and provides:

    Schema                      dataclass of its config keys; PREPARE_KEYS names those only prepare reads
    check(data, require)        range checks, raising through `require` with the key and the fix
    fetch_to(folder, data, seed) -> provenance
                                writes the raw files into `folder` (a temporary directory that
                                replaces data/raw/<name>/ only when complete) and returns what to
                                record: source, url or path, counts, synthetic, ...
    read_raw(folder)            what fetch_to wrote, for the prepare stage
    SELECT_KEYS (optional)      keys each experiment picks from one prepared dataset (not its settings)

`data.source` is auto | remote | local | sample in every module.
"""

from rnnlab.data.sources import alphabet, gutenberg, imdb, long_memory, phrases, prices, sine

SOURCES = {"imdb": imdb, "gutenberg": gutenberg, "prices": prices, "sine": sine, "phrases": phrases,
           "alphabet": alphabet, "long_memory": long_memory}
