import pytest

from rnnlab.config import ConfigError, compose, data_part, from_data_part


def test_default_experiment_is_the_course_imdb_lstm():
    cfg = compose(["experiment=imdb_lstm"])
    assert cfg.experiment_name == "imdb_lstm" and cfg.profile_name == "full"
    assert (cfg.data.num_words, cfg.data.maxlen, cfg.data.padding) == (20000, 80, "pre")
    assert (cfg.model.cell, cfg.model.units, cfg.model.dropout, cfg.model.embedding_dim) == ("lstm", 64, 0.2, 128)
    assert (cfg.regularizer.kind, cfg.regularizer.l1, cfg.regularizer.l2) == ("l1l2", 0.01, 0.01)
    assert list(cfg.regularizer.apply_to) == ["bias"]
    assert (cfg.trainer.optimizer, cfg.trainer.batch_size, cfg.trainer.epochs) == ("adam", 16, 1)


def test_quick_profile_shrinks_data_and_keeps_the_model():
    full, quick = compose(["experiment=imdb_lstm"]), compose(["experiment=imdb_lstm", "profile=quick"])
    assert quick.data.sample_train < full.data.sample_train and quick.data.limit is not None
    assert quick.model == full.model and quick.regularizer == full.regularizer


@pytest.mark.parametrize("override, fragment", [
    ("experiment=no_such_experiment", "no_such_experiment"),
    ("model.dropuot=0.1", "dropuot"),
    ("+model.dropuot=0.1", "dropuot"),
    ("model.dropout=1.0", "model.dropout"),
    ("model.dropout=-0.1", "model.dropout"),
    ("model.units=0", "model.units"),
    ("data.maxlen=0", "data.maxlen"),
    ("trainer.optimizer=adamw", "trainer.optimizer"),
    ("trainer.batch_size=abc", "batch_size"),
    ("model.cell=transformer", "model.cell"),
    ("regularizer=elastic", "regularizer"),
    ("data.source=web", "data.source"),
    ("data.source=local", "data.path"),
    ("data.source=local data.path=/no/such/file.csv", "no such file"),
])
def test_bad_config_stops_with_one_message_naming_the_key(override, fragment):
    with pytest.raises(ConfigError) as info:
        compose(["experiment=imdb_lstm", *override.split()])
    message = str(info.value)
    assert fragment in message and "\n" not in message


@pytest.mark.parametrize("override, fragment", [
    ("model.cell=gru", "model.cell"),
    ("model.layers=2", "model.layers"),
    ("model.dropout=0.2", "model.dropout"),
    ("model.bidirectional=true", "model.bidirectional"),
    ("model.activation=relu", "model.activation"),
    ("model.init_scale=0", "model.init_scale"),
    ("regularizer=l2", "regularizer.kind"),
    ("trainer.optimizer=rmsprop", "trainer.optimizer"),
    ("trainer.validation_split=0.1", "trainer.validation_split"),
    ("data=imdb", "data.name"),
    ("model.implementation=torch", "model.implementation"),
])
def test_numpy_models_refuse_what_they_do_not_implement(override, fragment):
    with pytest.raises(ConfigError) as info:
        compose(["experiment=phrase_numpy_rnn", *override.split()])
    message = str(info.value)
    assert fragment in message and "\n" not in message
    if fragment not in ("model.implementation", "model.init_scale"):
        assert "model.implementation=keras" in message  # the way out


def test_empty_local_file_is_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        compose(["experiment=imdb_lstm", "data.source=local", f"data.path={empty}"])


def test_data_part_splits_fetch_and_prepare_keys_and_round_trips(tmp_path):
    csv = tmp_path / "r.csv"
    csv.write_text("text,label\na,1\nb,0\nc,1\nd,0\n")
    cfg = compose(["experiment=imdb_lstm", "data.source=local", f"data.path={csv}"])
    part = data_part(cfg)
    assert set(part["prepare"]) == {"maxlen", "padding", "truncating", "limit"}
    assert "maxlen" not in part["fetch"] and part["fetch"]["source"] == "local"
    assert len(part["fetch"]["local_file_sha256"]) == 64
    assert from_data_part(part).data == cfg.data and from_data_part(part).seed == cfg.seed
    before = part["fetch"]["local_file_sha256"]
    csv.write_text("text,label\na,0\nb,1\nc,1\nd,0\n")  # same size, new content
    assert data_part(cfg)["fetch"]["local_file_sha256"] != before
