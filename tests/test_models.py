import keras
import numpy as np
from omegaconf import OmegaConf

from rnnlab.config import compose
from rnnlab.models.keras_models import build_optimizer, build_sentiment_model, regularizer_kwargs


def test_course_model_layers_and_parameter_count():
    cfg = compose(["experiment=imdb_lstm"])
    model = build_sentiment_model(cfg.model, cfg.regularizer, cfg.data.num_words, cfg.data.maxlen)
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
    model_cfg = OmegaConf.create({"cell": "gru", "units": 8, "layers": 3, "bidirectional": True, "dropout": 0.0,
                                  "recurrent_dropout": 0.0, "embedding_dim": 4})
    reg = OmegaConf.create({"kind": "none", "l1": 0.0, "l2": 0.0, "apply_to": ["bias"]})
    model = build_sentiment_model(model_cfg, reg, num_words=50, maxlen=7)
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
    assert isinstance(sgd, keras.optimizers.SGD) and np.isclose(sgd.momentum, 0.9) and sgd.clipnorm == 1.0
    assert isinstance(build_optimizer(OmegaConf.create({**base, "optimizer": "rmsprop"})), keras.optimizers.RMSprop)
