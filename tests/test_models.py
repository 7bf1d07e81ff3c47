import keras
import numpy as np
from omegaconf import OmegaConf

from rnnlab.config import compose
from rnnlab.models.keras_recurrent import build_model, build_optimizer, regularizer_kwargs


def test_course_model_layers_and_parameter_count():
    cfg = compose(["experiment=imdb_lstm"])
    tokens = {"kind": "tokens", "length": cfg.data.maxlen, "vocab": cfg.data.num_words}
    model = build_model(cfg.model, cfg.regularizer, tokens, "binary")
    embedding, lstm, dense = model.layers
    assert isinstance(embedding, keras.layers.Embedding) and embedding.embeddings.shape == (20000, 128)
    assert isinstance(lstm, keras.layers.LSTM) and lstm.units == 64 and lstm.dropout == 0.2
    reg = lstm.cell.bias_regularizer
    assert isinstance(reg, keras.regularizers.L1L2) and np.isclose(reg.l1, 0.01) and np.isclose(reg.l2, 0.01)
    assert lstm.cell.kernel_regularizer is None and lstm.cell.recurrent_regularizer is None
    assert dense.units == 1 and dense.activation.__name__ == "sigmoid"
    # 20000*128 embedding + 4*(64*(128+64)+64) LSTM + 65 dense
    assert model.count_params() == 2_560_000 + 49_408 + 65


def test_stacked_bidirectional_gru_shapes():
    cfg = compose(["experiment=imdb_lstm", "model.cell=gru", "model.units=8", "model.layers=3",
                   "model.bidirectional=true", "model.embedding_dim=4", "regularizer=none"])
    model = build_model(cfg.model, cfg.regularizer, {"kind": "tokens", "length": 7, "vocab": 50}, "binary")
    recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert len(recurrent) == 3
    assert [r.forward_layer.return_sequences for r in recurrent] == [True, True, False]
    out = model(np.ones((2, 7), dtype="int32"))
    assert out.shape == (2, 1) and np.all((np.asarray(out) > 0) & (np.asarray(out) < 1))


def test_regularizer_kinds_pick_their_strengths():
    def reg(kind, apply_to=("kernel", "bias")):
        return regularizer_kwargs(OmegaConf.create({"kind": kind, "l1": 0.3, "l2": 0.7, "apply_to": list(apply_to)}))

    assert reg("none") == {}
    l1 = reg("l1")["kernel_regularizer"]
    assert np.isclose(l1.l1, 0.3) and l1.l2 == 0.0
    l2 = reg("l2")["bias_regularizer"]
    assert l2.l1 == 0.0 and np.isclose(l2.l2, 0.7)
    assert set(reg("l1l2", ["recurrent"])) == {"recurrent_regularizer"}


def test_optimizers_with_clipping():
    base = {"learning_rate": 0.01, "momentum": 0.9, "clipnorm": 1.0, "clipvalue": None}
    sgd = build_optimizer(OmegaConf.create({**base, "optimizer": "sgd"}))
    assert isinstance(sgd, keras.optimizers.SGD) and np.isclose(sgd.momentum, 0.9) and sgd.global_clipnorm == 1.0
    assert isinstance(build_optimizer(OmegaConf.create({**base, "optimizer": "rmsprop"})), keras.optimizers.RMSprop)


def test_series_regression_with_dropout_between_and_dense_layers():
    # The course's stock model: four LSTM(45), each followed by Dropout(0.2), then Dense(1).
    cfg = compose(["experiment=imdb_lstm", "model.units=45", "model.layers=4", "model.dropout=0.0",
                   "model.dropout_between=0.2", "regularizer=none"])
    model = build_model(cfg.model, cfg.regularizer, {"kind": "series", "length": 40, "features": 1}, "regression")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["LSTM", "Dropout"] * 4 + ["Dense"]
    assert model.layers[-1].activation.__name__ == "linear"
    assert model(np.zeros((3, 40, 1), dtype="float32")).shape == (3, 1)


def test_stateful_onehot_classifier_keeps_state_between_calls():
    cfg = compose(["experiment=imdb_lstm", "model.units=4", "model.stateful=true", "model.dropout=0.0",
                   "regularizer=none"])
    model = build_model(cfg.model, cfg.regularizer, {"kind": "onehot", "length": 1, "features": 26}, "next_char",
                        n_outputs=26, batch_size=1)
    x = np.eye(26, dtype="float32")[None, :1]
    first, second = np.asarray(model(x)), np.asarray(model(x))
    assert first.shape == (1, 26) and np.isclose(first.sum(), 1.0, atol=1e-5)
    assert not np.allclose(first, second)  # the state carried over
    for layer in model.layers:
        if hasattr(layer, "reset_states"):
            layer.reset_states()
    assert np.allclose(np.asarray(model(x)), first, atol=1e-6)
