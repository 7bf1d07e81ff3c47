import numpy as np
import pytest

from rnnlab import io, paths
from rnnlab.config import compose
from rnnlab.data.fetch import fetch, load_raw
from rnnlab.data.cache import ensure_prepared
from rnnlab.data.prepare import pad, prepare


def test_pad_and_truncate_on_either_side():
    seqs = [[1, 2, 3, 4, 5], [7]]
    assert pad(seqs, 3).tolist() == [[3, 4, 5], [0, 0, 7]]
    assert pad(seqs, 3, padding="post", truncating="post").tolist() == [[1, 2, 3], [7, 0, 0]]
    assert pad(seqs, 3).dtype == np.int32


def test_npz_refuses_object_arrays(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[:] = [[1], [1, 2]]
    with pytest.raises(TypeError, match="offsets"):
        io.write_npz(tmp_path / "x.npz", x=ragged)
    assert not (tmp_path / "x.npz").exists()


def quick_cfg(*extra):
    return compose(["experiment=imdb_lstm", "profile=quick", "data.source=sample",
                    "data.sample_train=300", "data.sample_test=100", "data.limit=null", *extra])


def test_fetch_and_prepare_write_arrays_provenance_and_meta(isolated_root):
    cfg = quick_cfg()
    raw = load_raw(fetch(cfg))
    assert len(raw["train"]) == 300 and raw["provenance"]["counts"]["test"] == 100
    assert raw["provenance"]["sha256"] == io.sha256_dir(paths.raw_dir("imdb"), exclude=("provenance.json",))
    folder = prepare(cfg)
    with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
        assert npz["x_train"].shape == (300, 80) and npz["x_test"].shape == (100, 80)
        # keras' IMDB layout: padding in front, the start id right before the words
        assert (npz["x_train"][:, -1] > 2).all()
    meta = io.read_json(folder / "meta.json")
    assert meta["sha256"] == io.sha256_file(folder / "arrays.npz")
    assert meta["provenance"]["label"] == "synthetic sample"


def test_ensure_prepared_builds_once_and_leaves_pipeline_outputs_alone(isolated_root):
    cfg = quick_cfg()
    fetch(cfg)
    pipeline = prepare(cfg)
    pipeline_meta = (pipeline / "meta.json").read_text()
    assert ensure_prepared(cfg)["meta"]["config_sha256"] == io.read_json(pipeline / "meta.json")["config_sha256"]

    other = quick_cfg("data.maxlen=40")
    first = ensure_prepared(other)
    assert first["x_train"].shape == (300, 40)
    cached = next((isolated_root / "data" / "cache").glob("imdb-*/prepared/meta.json"))
    stamp = cached.stat().st_mtime_ns
    assert ensure_prepared(other)["x_train"].shape == (300, 40)
    assert cached.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert (pipeline / "meta.json").read_text() == pipeline_meta


def test_a_failed_fetch_leaves_earlier_output_intact(isolated_root, monkeypatch):
    cfg = quick_cfg()
    folder = fetch(cfg)
    before = io.sha256_dir(folder)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(io, "write_json", broken)
    with pytest.raises(RuntimeError):
        fetch(cfg)
    assert io.sha256_dir(folder) == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_a_refetch_of_the_same_data_leaves_prepared_output_byte_identical(isolated_root):
    """So that DVC skips training when fetch reran (new code, same data)."""
    cfg = quick_cfg()
    fetch(cfg)
    first = io.sha256_dir(prepare(cfg))
    fetch(cfg)  # new fetched_at, same data
    assert io.sha256_dir(prepare(cfg)) == first
