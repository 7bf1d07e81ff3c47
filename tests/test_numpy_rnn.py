"""The from-scratch NumPy RNN and LSTM: gradients against finite differences, forward and
gradients against Keras and TensorFlow's autodiff, padding, training on the phrase
sentiment data, determinism, and the phrase source itself."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from rnnlab.config import compose
from rnnlab.data.fetch import fetch, load_raw
from rnnlab.data.datasets import phrases
from rnnlab.errors import ConfigError, DataSourceError
from rnnlab.models.numpy_common import SGD, Adam, clip_gradients, cross_entropy
from rnnlab.models.numpy_lstm import NumpyLSTM
from rnnlab.models.numpy_rnn import NumpyRNN

MODELS = [NumpyRNN, NumpyLSTM]
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "numpy_rnn_bench.py"


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """The matrices are small; on a shared machine extra BLAS threads only wait for each other."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def random_case(cls, rng, *, return_sequences, masked, dtype=np.float64, scale=0.5):
    """A model with random weights (biases too) and a random batch of random shape."""
    batch, steps, features, hidden, classes = (int(rng.integers(lo, hi)) for lo, hi in
                                               ((2, 5), (3, 7), (2, 6), (2, 6), (2, 5)))
    model = cls(features, hidden, classes, return_sequences=return_sequences, dtype=dtype, seed=int(rng.integers(99)),
                init_scale=scale)
    for value in model.params.values():
        value += (rng.standard_normal(value.shape) * scale).astype(dtype)
    x = rng.standard_normal((batch, steps, features)).astype(dtype)
    y = rng.integers(0, classes, (batch, steps) if return_sequences else batch)
    mask = None
    if masked:
        # One sequence padded at the front, one at the back, the rest whole.
        mask = np.ones((batch, steps), dtype=dtype)
        mask[0, :2] = 0
        mask[1, -1] = 0
    return model, x, y, mask


def loss_of(model, x, y, mask, **state):
    return cross_entropy(model.forward(x, mask, **state)[0], y, mask)[0]


def numeric_gradient(f, array, eps=1e-5):
    """Central differences of the scalar f() w.r.t. every entry of `array`, perturbed in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = f()
        array[index] = original - eps
        minus = f()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


# ---------------------------------------------------------------- gradient check


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["many-to-one", "many-to-many"])
@pytest.mark.parametrize("masked", [False, True], ids=["whole", "masked"])
def test_gradients_match_central_differences(cls, return_sequences, masked):
    rng = np.random.default_rng([cls is NumpyLSTM, return_sequences, masked])
    model, x, y, mask = random_case(cls, rng, return_sequences=return_sequences, masked=masked)
    state = {name: rng.standard_normal((len(x), model.params["W_hy"].shape[0]))
             for name in (("h0", "c0") if cls is NumpyLSTM else ("h0",))}
    logits, cache = model.forward(x, mask, **state)
    grads = model.backward(cache, cross_entropy(logits, y, mask)[1])

    errors = {}
    for name, value in [*model.params.items(), ("x", x), *state.items()]:
        numeric = numeric_gradient(lambda: loss_of(model, x, y, mask, **state), value)
        errors[name] = relative_error(grads[name], numeric)
    assert max(errors.values()) < 1e-6, errors
    assert set(model.params) < set(errors)


@pytest.mark.parametrize("cls", MODELS)
def test_hidden_state_gradients_match_the_loss_seen_from_each_step(cls):
    """dL/dh_t from backward equals the gradient of the loss of the rest of the sequence,
    run from h_t (and c_t, held fixed) as its initial state, by central differences."""
    rng = np.random.default_rng(7)
    model, x, y, mask = random_case(cls, rng, return_sequences=False, masked=True)
    logits, cache = model.forward(x, mask)
    grads = model.backward(cache, cross_entropy(logits, y, mask)[1])
    steps = x.shape[1]
    for t in range(steps):
        h_t = cache["hs"][:, t + 1].copy()
        extra = {"c0": cache["cs"][:, t + 1]} if cls is NumpyLSTM else {}
        numeric = numeric_gradient(
            lambda: loss_of(model, x[:, t + 1:], y, mask[:, t + 1:], h0=h_t, **extra), h_t)
        assert relative_error(grads["h"][:, t], numeric) < 1e-6, t


def test_hidden_state_gradients_vanish_backwards_at_the_course_init():
    """With the course's randn / 1000 weights, dL/dh_t shrinks by orders of magnitude per
    step back: the vanishing gradient the later study measures, through grads["h"]."""
    model = NumpyRNN(5, 64, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 6, 5))
    _, grads = model.loss_and_grads(x, np.array([0, 1, 0, 1]))
    norms = np.linalg.norm(grads["h"], axis=-1).mean(axis=0)
    assert norms.shape == (6,)
    assert np.all(norms[1:] / norms[:-1] > 100)


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["many-to-one", "many-to-many"])
def test_padding_front_or_back_changes_nothing(cls, return_sequences):
    """A batch of different lengths, padded with masks, gives each sequence's unpadded
    outputs, and the padded batch's gradient is the (step-weighted) mean of the sequences' own."""
    rng = np.random.default_rng(3)
    model = cls(4, 5, 3, return_sequences=return_sequences, seed=1, init_scale=0.5)
    for value in model.params.values():
        value += rng.standard_normal(value.shape) * 0.3
    lengths, steps = [2, 5, 3], 5
    seqs = [rng.standard_normal((n, 4)) for n in lengths]
    labels = [rng.integers(0, 3, n if return_sequences else None) for n in lengths]

    alone = [model.loss_and_grads(s[None], np.asarray(lab)[None]) for s, lab in zip(seqs, labels)]
    alone_logits = [model.forward(s[None])[0][0] for s in seqs]
    for front in (True, False):
        x = np.zeros((3, steps, 4))
        mask = np.zeros((3, steps))
        y = np.zeros((3, steps) if return_sequences else 3, dtype=np.int64)
        spans = [slice(steps - n, steps) if front else slice(0, n) for n in lengths]
        for row, (s, lab, span) in enumerate(zip(seqs, labels, spans)):
            x[row, span], mask[row, span] = s, 1
            if return_sequences:
                y[row, span] = lab
            else:
                y[row] = lab
        logits, _ = model.forward(x, mask)
        for row, span in enumerate(spans):
            expected = alone_logits[row]
            got = logits[row, span] if return_sequences else logits[row]
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        # Many-to-one averages over sequences, many-to-many over real steps.
        weights = np.asarray(lengths if return_sequences else [1, 1, 1], dtype=float)
        _, grads = model.loss_and_grads(x, y, mask)
        for name in model.params:
            mean = np.average([g[name] for _, g in alone], axis=0, weights=weights)
            np.testing.assert_allclose(grads[name], mean, rtol=0, atol=1e-12)


def test_padded_steps_are_skipped_when_the_padding_is_all_on_one_side():
    """With padding all at the front (or all at the back), the rows sorted longest first run
    step t on its real rows only; a mask whose steps' real rows are not nested, or that is not
    0 and 1, runs every row and blends with the mask."""
    from rnnlab.models.numpy_rnn import step_layout

    front = np.array([[0, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=float)
    layout = step_layout(front, 3, 3, np.float64)
    assert layout.blend is None and layout.active == [1, 2, 3] and layout.order.tolist() == [1, 2, 0]
    assert step_layout(front[:, ::-1], 3, 3, np.float64).active == [3, 2, 1]
    assert step_layout(front.astype(bool), 3, 3, np.float64).active == [1, 2, 3]
    # Nested sets of real rows need not be padding: here step 1 runs on the sorted batch's row 0 only.
    assert step_layout(np.array([[1, 0, 1], [1, 1, 1]]), 2, 3, np.float64).active == [2, 1, 2]
    for general in ([[0, 1, 1], [1, 1, 0]], [[1, 0, 1], [0, 1, 1]], [[0.5, 1, 1], [1, 1, 1]]):
        layout = step_layout(np.array(general), 2, 3, np.float64)
        assert layout.blend is not None and layout.active == [2, 2, 2] and layout.order is None


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["many-to-one", "many-to-many"])
@pytest.mark.parametrize("front", [True, False], ids=["front", "back"])
def test_skipping_padded_steps_matches_the_blended_path(cls, return_sequences, front):
    """The same rows give the same outputs, states and gradients (dL/dh on padded steps
    included) whether the steps skip their padding or run every row blended with the mask,
    which one more row with holes in its mask forces; its dlogits are zero, so it adds
    nothing to the weights' gradients either."""
    rng = np.random.default_rng(13)
    model = cls(4, 5, 3, return_sequences=return_sequences, seed=3, init_scale=0.5)
    batch, steps = 6, 5
    lengths = np.array([2, 5, 0, 3, 1, 5])
    real = np.arange(steps) >= steps - lengths[:, None] if front else np.arange(steps) < lengths[:, None]
    mask = real.astype(np.float64)
    x = rng.standard_normal((batch, steps, 4))
    state = {name: rng.standard_normal((batch, 5)) for name in (("h0", "c0") if cls is NumpyLSTM else ("h0",))}
    dlogits = rng.standard_normal((batch, steps, 3) if return_sequences else (batch, 3))

    logits, cache = model.forward(x, mask, **state)
    grads = model.backward(cache, dlogits)
    holed = np.concatenate([mask, [[1, 0, 1, 0, 1]]])
    logits2, cache2 = model.forward(np.concatenate([x, rng.standard_normal((1, steps, 4))]), holed,
                                    **{k: np.concatenate([v, rng.standard_normal((1, 5))]) for k, v in state.items()})
    grads2 = model.backward(cache2, np.concatenate([dlogits, np.zeros((1, *dlogits.shape[1:]))]))
    assert cache["layout"].blend is None and cache2["layout"].blend is not None

    np.testing.assert_allclose(logits2[:batch], logits, rtol=0, atol=1e-12)
    for name in ("hs", "cs") if cls is NumpyLSTM else ("hs",):
        np.testing.assert_allclose(cache2[name][:batch], cache[name], rtol=0, atol=1e-12, err_msg=name)
    assert set(grads2) == set(grads)
    for name, grad in grads.items():
        other = grads2[name] if name in model.params else grads2[name][:batch]
        np.testing.assert_allclose(other, grad, rtol=0, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------- Keras parity


def keras_twin(model, x, mask):
    """The Keras layer matching `model`, built on `x` and holding its weights."""
    import keras

    hidden = model.params["W_hy"].shape[0]
    if isinstance(model, NumpyLSTM):
        layer = keras.layers.LSTM(hidden, return_sequences=model.return_sequences)
        weights = [model.params["W_x"], model.params["W_h"], model.params["b"]]
    else:
        layer = keras.layers.SimpleRNN(hidden, return_sequences=model.return_sequences)
        weights = [model.params["W_xh"], model.params["W_hh"], model.params["b_h"]]
    layer(x, mask=mask)
    layer.set_weights(weights)
    return layer


def keras_loss_and_grads(layer, head, x, y, mask, return_sequences):
    """Logits, loss and gradients (w.r.t. x, the layer's weights, the head's W and b) of the
    Keras twin, by the loaded backend's own autodiff: GradientTape or jax.grad."""
    import keras
    from keras import ops

    def loss_of(x, weights, w, b):
        fixed = [v.value for v in layer.non_trainable_variables]  # the dropout's seed state
        states, _ = layer.stateless_call(weights, fixed, x, mask=ops.convert_to_tensor(mask.astype(bool)))
        logits = ops.matmul(states, w) + b
        per_item = keras.losses.sparse_categorical_crossentropy(ops.convert_to_tensor(y), logits, from_logits=True)
        weight = ops.convert_to_tensor(mask) if return_sequences else ops.ones_like(per_item)
        return ops.sum(per_item * weight) / ops.sum(weight), logits

    args = (x, [np.asarray(v) for v in layer.trainable_variables], *head)
    if keras.backend.backend() == "jax":
        import jax

        (loss, logits), grads = jax.value_and_grad(loss_of, argnums=(0, 1, 2, 3), has_aux=True)(*args)
        grads = [grads[0], *grads[1], grads[2], grads[3]]
    else:
        import tensorflow as tf

        variables = [tf.Variable(x), [tf.Variable(v) for v in args[1]], tf.Variable(head[0]), tf.Variable(head[1])]
        with tf.GradientTape() as tape:
            loss, logits = loss_of(*variables)
        grads = tape.gradient(loss, [variables[0], *variables[1], variables[2], variables[3]])
    return np.asarray(logits), float(loss), [np.asarray(g) for g in grads]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["many-to-one", "many-to-many"])
def test_forward_and_gradients_agree_with_keras_and_its_autodiff(cls, return_sequences):
    rng = np.random.default_rng(11)
    model = cls(6, 8, 3, return_sequences=return_sequences, dtype=np.float32, seed=2, init_scale=0.3)
    for value in model.params.values():
        value += (rng.standard_normal(value.shape) * 0.3).astype(np.float32)
    x = rng.standard_normal((4, 7, 6)).astype(np.float32)
    mask = np.ones((4, 7), dtype=np.float32)
    mask[0, :3] = 0
    mask[2, :1] = 0
    y = rng.integers(0, 3, (4, 7) if return_sequences else 4)

    loss, grads = model.loss_and_grads(x, y, mask)
    logits, _ = model.forward(x, mask)
    assert logits.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())

    layer = keras_twin(model, x, mask.astype(bool))
    keras_logits, keras_loss, keras_grads = keras_loss_and_grads(
        layer, (model.params["W_hy"], model.params["b_y"]), x, y, mask, return_sequences)

    np.testing.assert_allclose(logits, keras_logits, rtol=0, atol=1e-5)
    assert abs(loss - keras_loss) < 1e-5
    names = ["x", *(["W_x", "W_h", "b"] if cls is NumpyLSTM else ["W_xh", "W_hh", "b_h"]), "W_hy", "b_y"]
    assert len(keras_grads) == len(names)
    for name, keras_grad in zip(names, keras_grads):
        np.testing.assert_allclose(grads[name], keras_grad, rtol=0, atol=1e-4, err_msg=name)


def test_adam_and_clipping_follow_keras():
    import keras

    rng = np.random.default_rng(5)
    start = rng.standard_normal((3, 4)).astype(np.float32)
    steps = [rng.standard_normal((3, 4)).astype(np.float32) * 3 for _ in range(4)]
    ours = {"w": start.copy()}
    adam = Adam(0.05, clip_value=1.0)
    variable = keras.Variable(start.copy())
    theirs = keras.optimizers.Adam(0.05, clipvalue=1.0)
    for g in steps:
        adam.step(ours, {"w": g, "h": np.ones(1)})
        theirs.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    # float32 both, with the moments updated in a different but equivalent order
    np.testing.assert_allclose(ours["w"], keras.ops.convert_to_numpy(variable), rtol=0, atol=1e-5)
    assert ours["w"].dtype == np.float32

    grads = {"a": np.array([3.0, -0.5]), "b": np.array([[-4.0]])}
    assert np.array_equal(clip_gradients(grads, 1.0, None)["a"], [1.0, -0.5])
    by_norm = clip_gradients(grads, None, 2.5)
    assert np.isclose(np.sqrt(sum((g ** 2).sum() for g in by_norm.values())), 2.5)
    assert np.allclose(by_norm["a"] / grads["a"], 2.5 / np.sqrt(9 + 0.25 + 16))
    assert clip_gradients(grads, None, 100.0)["b"][0, 0] == -4.0


# ---------------------------------------------------------------- training on the phrases


def phrase_arrays(language):
    sample = phrases.from_sample(language)
    vocabulary = phrases.build_vocabulary(sample.train_texts)
    x, mask = phrases.one_hot_sequences(sample.train_texts, vocabulary)
    x_test, mask_test = phrases.one_hot_sequences(sample.test_texts, vocabulary, maxlen=x.shape[1])
    return vocabulary, (x, sample.train_labels, mask), (x_test, sample.test_labels, mask_test)


# The course's settings (hidden 64, randn / 1000, learning rate 2e-2, clipping to [-1, 1]),
# except the update: the course takes 1000 epochs of per-phrase SGD (see the benchmark);
# here Adam on the whole set at once reaches 100% within RNN_EPOCHS / LSTM_EPOCHS.
RNN_EPOCHS, LSTM_EPOCHS = 150, 60


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("cls, epochs", [(NumpyRNN, RNN_EPOCHS), (NumpyLSTM, LSTM_EPOCHS)], ids=["rnn", "lstm"])
def test_numpy_models_learn_the_phrases(cls, epochs, language):
    vocabulary, train, test = phrase_arrays(language)
    model = cls(len(vocabulary), 64, 2, seed=0)
    history = model.fit(*train, optimizer=Adam(2e-2, clip_value=1.0), epochs=epochs, batch_size=len(train[0]),
                        validation=test)
    train_loss, train_accuracy = model.evaluate(*train)
    test_loss, test_accuracy = model.evaluate(*test)
    print(f"\n{cls.__name__} {language}: train accuracy {train_accuracy:.3f} (loss {train_loss:.4f}), "
          f"test accuracy {test_accuracy:.3f}, first 100% after epoch {history['accuracy'].index(1.0) + 1}")
    assert train_accuracy == 1.0
    assert history["loss"][-1] < 0.05 < history["loss"][0]
    assert test_accuracy >= 0.8
    assert history["val_accuracy"][-1] == test_accuracy
    proba = model.predict_proba(test[0], test[2])
    assert proba.shape == (len(test[0]), 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_keras_simplernn_on_the_same_one_hot_phrases():
    """The framework's answer to the same task, for comparison: same data, 64 units, Adam."""
    import keras

    vocabulary, (x, y, _), (x_test, y_test, _) = phrase_arrays("en")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=x.shape[1:]),
        keras.layers.Masking(0.0),  # padding vectors are all zero; a one-hot word never is
        keras.layers.SimpleRNN(64),
        keras.layers.Dense(2),
    ])
    model.compile(optimizer=keras.optimizers.Adam(2e-2, clipvalue=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    # RNN_EPOCHS full-batch steps, run as 10 steps per epoch over 10 unshuffled copies of the
    # set, since Keras spends far longer setting an epoch up than on one step of it.
    copies = 10
    model.fit(np.tile(x, (copies, 1, 1)), np.tile(y, copies), batch_size=len(x), epochs=RNN_EPOCHS // copies,
              shuffle=False, verbose=0)
    train_accuracy = model.evaluate(x, y, verbose=0)[1]
    test_accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    print(f"\nKeras SimpleRNN en: train accuracy {train_accuracy:.3f}, test accuracy {test_accuracy:.3f}")
    assert train_accuracy == 1.0
    assert test_accuracy >= 0.7


@pytest.mark.parametrize("cls", MODELS)
def test_same_seed_same_weights_after_training(cls):
    vocabulary, train, _ = phrase_arrays("en")

    def trained(seed):
        model = cls(len(vocabulary), 16, 2, seed=seed)
        model.fit(*train, optimizer=Adam(2e-2, clip_value=1.0), epochs=3, batch_size=8)
        return model.params

    first, again, other = trained(1), trained(1), trained(2)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["W_hy"], other["W_hy"])


def test_batch_of_one_with_sgd_is_the_course_algorithm():
    """One epoch of the benchmark's re-implementation of the course loop and of NumpyRNN with
    batch 1 and SGD end on the same weights, once the course's W_hh transposition in BPTT
    is fixed; as the course writes it, the weights drift apart a little."""
    spec = importlib.util.spec_from_file_location("numpy_rnn_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclass looks its module up there
    spec.loader.exec_module(bench)
    assert bench.course_equivalence(exact_gradient=True) < 1e-13
    assert 1e-9 < bench.course_equivalence(exact_gradient=False) < 1e-4


def test_sgd_is_the_plain_clipped_step():
    params = {"w": np.array([1.0, 2.0])}
    SGD(0.1, clip_value=1.0).step(params, {"w": np.array([5.0, -0.5]), "x": np.zeros(3)})
    assert np.allclose(params["w"], [0.9, 2.05])


# ---------------------------------------------------------------- the phrase source


@pytest.mark.parametrize("language", ["en", "ru"])
def test_phrases_are_distinct_balanced_and_test_words_are_known(language):
    train, test = phrases.TRAIN[language], phrases.TEST[language]
    assert 60 <= len(train) <= 80 and 20 <= len(test) <= 30
    texts = [t for t, _ in train + test]
    assert len(set(texts)) == len(texts)  # no phrase twice, none shared by train and test
    vocabulary = phrases.build_vocabulary([t for t, _ in train])
    assert all(w in vocabulary for t, _ in test for w in phrases.tokenize(t))
    for split in (train, test):
        share = np.mean([label for _, label in split])
        assert 0.4 <= share <= 0.6


@pytest.mark.parametrize("language, negator", [("en", "not"), ("ru", "не")])
def test_negation_is_not_the_label(language, negator):
    """Negated phrases are positive and negative alike, so only word order tells them apart."""
    negated = [label for text, label in phrases.TRAIN[language] if negator in phrases.tokenize(text)]
    assert len(negated) >= 20 and 0.4 <= np.mean(negated) <= 0.6


def test_one_hot_pads_at_the_front_and_maps_unknown_words():
    vocabulary = phrases.build_vocabulary(["not bad", "good"])
    assert vocabulary == {"<unk>": 0, "bad": 1, "good": 2, "not": 3}
    x, mask = phrases.one_hot_sequences(["Good", "not so bad"], vocabulary)
    assert x.shape == (2, 3, 4) and mask.tolist() == [[0, 0, 1], [1, 1, 1]]
    assert x[0, :2].sum() == 0 and x[0, 2].argmax() == 2
    assert [int(v.argmax()) for v in x[1]] == [3, 0, 1]  # "so" is unknown


def test_fetch_and_read_back_both_languages(tmp_path):
    cfg = compose(["data=phrases", "data.language=both"])
    raw = load_raw(fetch(cfg, tmp_path / "phrases"))
    assert raw["train_texts"][0] == "good" and "это хорошо" in raw["train_texts"]
    assert len(raw["train_texts"]) == 144 and len(raw["test_texts"]) == 52
    assert raw["train_labels"].dtype == np.int64
    provenance = raw["provenance"]
    assert provenance["label"] == "project-written phrases" and provenance["synthetic"] is True
    assert provenance["source"] == "sample" and provenance["counts"]["vocabulary"] == 51


def test_local_csv_and_its_errors(tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("text,label,split\nvery good,1,train\nbad,0,train\nnot bad,1,test\n")
    mine = phrases.load(compose(["data=phrases", "data.source=local", f"data.path={csv}"]).data)
    assert mine.train_texts == ["very good", "bad"] and mine.test_labels.tolist() == [1]
    assert mine.provenance["synthetic"] is False
    csv.write_text("text,label,split\nvery good,1,train\nbad,0,validation\n")
    with pytest.raises(DataSourceError, match="split must be train or test; row 3"):
        phrases.from_csv(csv)
    csv.write_text("text,label\nvery good,1\n")
    with pytest.raises(DataSourceError, match="missing column"):
        phrases.from_csv(csv)


def test_there_is_no_remote():
    with pytest.raises(ConfigError, match="no remote"):
        compose(["data=phrases", "data.source=remote"])
    with pytest.raises(DataSourceError, match="no remote"):
        phrases.load(phrases.Schema(source="remote"))
    with pytest.raises(ConfigError, match="data.language"):
        compose(["data=phrases", "data.language=de"])
