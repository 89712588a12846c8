"""Masked losses and metrics against plain NumPy, and the autoencoder's structure and training paths."""

import keras
import numpy as np
import pytest
import scipy.sparse
import tensorflow as tf

import fast_path
import metrics
import model as model_module
from model import DeepAutoEncoder, TiedDense


def random_ratings(rows=8, cols=30, density=0.3, seed=0):
    rng = np.random.default_rng(seed)
    ratings = rng.integers(1, 6, (rows, cols)).astype(np.float32)
    ratings[rng.random((rows, cols)) > density] = 0
    ratings[-1] = 0  # a row without any rating must be left out, not counted as 0
    return ratings


def numpy_masked_rmse(y_true, y_pred, clip=None):
    y_pred = np.clip(y_pred, *clip) if clip else y_pred
    row_rmse = [np.sqrt(np.mean((y_pred[i][y_true[i] > 0] - y_true[i][y_true[i] > 0]) ** 2))
                for i in range(len(y_true)) if (y_true[i] > 0).any()]
    return np.mean(row_rmse)


@pytest.mark.parametrize("clip", [None, (1.0, 5.0), (0.5, 4.5)])
def test_masked_rmse_matches_numpy_dense_and_sparse(clip):
    y_true = random_ratings()
    y_pred = np.random.default_rng(1).uniform(0, 6, y_true.shape).astype(np.float32)
    expected = numpy_masked_rmse(y_true, y_pred, clip)
    assert float(model_module.masked_rmse(y_true, y_pred, clip=clip)) == pytest.approx(expected, rel=1e-5)
    sparse = tf.sparse.from_dense(y_true)
    assert float(model_module.masked_rmse(sparse, y_pred, clip=clip)) == pytest.approx(expected, rel=1e-5)


def test_masked_mse_is_the_papers_mmse():
    y_true = random_ratings()
    y_pred = np.random.default_rng(1).uniform(0, 6, y_true.shape).astype(np.float32)
    known = y_true > 0
    expected = np.mean((y_pred[known] - y_true[known]) ** 2)
    assert float(model_module.masked_mse(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    assert float(model_module.masked_mse(tf.sparse.from_dense(y_true), y_pred)) == pytest.approx(expected, rel=1e-5)


def test_numpy_metrics_match_plain_computation():
    rng = np.random.default_rng(2)
    users = rng.integers(0, 20, 500)
    ratings = rng.integers(1, 6, 500).astype(np.float32)
    predictions = rng.uniform(0, 6, 500).astype(np.float32)
    clipped = np.clip(predictions, 1, 5)
    per_user = [np.sqrt(np.mean((clipped[users == u] - ratings[users == u]) ** 2)) for u in np.unique(users)]
    assert metrics.per_user_masked_rmse(users, ratings, predictions) == pytest.approx(np.mean(per_user), rel=1e-6)
    assert metrics.global_rmse(ratings, predictions) == pytest.approx(np.sqrt(np.mean((clipped - ratings) ** 2)))


SEED_NETWORK = dict(layers=[512, 512, 1024, 512, 512], activation="selu", last_activation="selu", dropout=0.8,
                    l2_encode=0.001, l2_decode=0.001, constrained=False, input_dropout=0.0, refeed_steps=0,
                    loss="masked_rmse")


def small_model(n_inputs=30, **kwargs):
    keras.utils.set_random_seed(0)
    model = DeepAutoEncoder(n_inputs, (1.0, 5.0), **{**SEED_NETWORK, "layers": [16, 8, 16], "dropout": 0.5,
                                                     **kwargs})
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    model.build()
    return model


def test_model_structure_follows_the_seed():
    model = DeepAutoEncoder(30, (1.0, 5.0), **SEED_NETWORK)
    model.build()
    assert [layer.units for layer in model.encoder] == [512, 512, 1024]
    assert model.encoder[-1].name == "latent" and model.dropout.rate == 0.8
    assert [layer.units for layer in model.decoder] == [512, 512] and model.output_layer.units == 30
    assert model(np.zeros((4, 30), np.float32)).shape == (4, 30)
    assert len(model.losses) == 6  # an L2 penalty on every kernel


def test_l2_penalties_use_encode_and_decode_strengths():
    model = small_model(l2_encode=0.5, l2_decode=0.0)
    expected = sum(0.5 * np.sum(layer.kernel.numpy() ** 2) for layer in model.encoder)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)


def test_fast_l2_penalty_equals_keras_regularisers():
    model = small_model(l2_encode=0.5, l2_decode=0.25)
    expected = float(tf.add_n(model.losses))
    assert float(fast_path.l2_penalty(model.trainable_variables)) == pytest.approx(expected, rel=1e-6)


def test_fused_momentum_update_equals_keras_sgd():
    fused, plain = small_model(dropout=0.0), small_model(dropout=0.0)  # the same seed: the same weights
    batch = tf.sparse.from_dense(random_ratings())
    for _ in range(3):
        for model in (fused, plain):
            _, gradients, _ = model.loss_and_gradients(batch, batch)
            model.apply_gradients(gradients, fast=model is fused)
    assert int(fused.optimizer.iterations) == int(plain.optimizer.iterations) == 3
    for fused_weight, plain_weight in zip(fused.get_weights() + [m.numpy() for m in fused.optimizer.momentums],
                                          plain.get_weights() + [m.numpy() for m in plain.optimizer.momentums]):
        np.testing.assert_allclose(fused_weight, plain_weight, rtol=1e-5, atol=1e-7)
    assert not np.allclose(fused.get_weights()[0], small_model(dropout=0.0).get_weights()[0])


@pytest.mark.parametrize("loss_name", ["masked_rmse", "masked_mse"])
def test_sparse_and_dense_batches_give_same_loss_and_gradients(loss_name):
    model = small_model(dropout=0.0, loss=loss_name)
    inputs = random_ratings()
    loss_dense, grads_dense, outputs_dense = model.loss_and_gradients(tf.constant(inputs), tf.constant(inputs))
    sparse = tf.sparse.from_dense(inputs)
    loss_sparse, grads_sparse, outputs_sparse = model.loss_and_gradients(sparse, sparse)
    assert float(loss_dense) == pytest.approx(float(loss_sparse), rel=1e-6)
    def global_sums(y_true, y_pred, clip):  # what the epoch's global RMSE sums: squared errors and ratings
        return [tf.reduce_sum(value) for value in model_module.row_squared_errors(y_true, y_pred, clip)]

    for metric in (model_module.masked_rmse, global_sums):  # dense outputs vs outputs at the ratings
        dense_value = np.array(metric(tf.constant(inputs), outputs_dense, clip=(1.0, 5.0)))
        np.testing.assert_allclose(dense_value, np.array(metric(sparse, outputs_sparse, clip=(1.0, 5.0))), rtol=1e-6)
    for dense, sparse_grad in zip(grads_dense, grads_sparse):
        np.testing.assert_allclose(dense, tf.convert_to_tensor(sparse_grad), rtol=1e-5, atol=1e-7)


def test_training_lowers_the_loss():
    model = small_model(dropout=0.0)
    inputs = random_ratings(rows=64, density=0.5)
    first = model.evaluate(inputs, inputs, verbose=0, return_dict=True)["loss"]
    model.fit(inputs, inputs, epochs=30, batch_size=16, verbose=0)
    assert model.evaluate(inputs, inputs, verbose=0, return_dict=True)["loss"] < first * 0.8


def test_predict_at_reads_the_right_positions():
    model = small_model()
    inputs = scipy.sparse.csr_matrix(random_ratings())
    rows, cols = np.array([3, 0, 3, 5]), np.array([2, 7, 9, 0])
    full = model(inputs.toarray(), training=False).numpy()
    np.testing.assert_allclose(metrics.predict_at(model, inputs, rows, cols, batch_size=2), full[rows, cols],
                               rtol=1e-5)


def test_saved_model_reloads_with_same_predictions(tmp_path):
    model = small_model()
    inputs = random_ratings()
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded(inputs), model(inputs), rtol=1e-6)


def test_dense_refeeding_takes_the_extra_steps():
    model = small_model(refeed_steps=2)
    inputs = tf.constant(random_ratings())
    before = [variable.numpy().copy() for variable in model.trainable_variables]
    model.train_step((inputs, inputs))
    assert int(model.optimizer.iterations) == 3  # the normal step and two re-fed ones
    plain = small_model(refeed_steps=0)
    plain.train_step((inputs, inputs))
    assert int(plain.optimizer.iterations) == 1
    moved = [np.abs(after.numpy() - start).max() for after, start in zip(model.trainable_variables, before)]
    assert min(moved) > 0


def test_constrained_decoder_shares_the_encoder_kernels():
    model = small_model(constrained=True, l2_decode=0.5)
    decoder_and_output = model.decoder + [model.output_layer]
    assert all(isinstance(layer, TiedDense) for layer in decoder_and_output)
    assert [layer.tied_to for layer in decoder_and_output] == [model.encoder[1], model.encoder[0]]
    kernels = [variable for variable in model.trainable_variables if "kernel" in variable.path]
    assert len(kernels) == len(model.encoder) == 2  # only the encoder's kernels exist
    inputs = random_ratings()
    before = model(inputs).numpy()
    model.encoder[0].kernel.assign(model.encoder[0].kernel * 2)  # the output layer must see this change
    assert not np.allclose(model(inputs).numpy(), before)
    _, gradients, _ = model.loss_and_gradients(tf.constant(inputs), tf.constant(inputs))
    assert all(gradient is not None for gradient in gradients)


def test_constrained_model_reloads(tmp_path):
    model = small_model(constrained=True)
    inputs = random_ratings()
    model.save(tmp_path / "tied.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "tied.keras")(inputs), model(inputs), rtol=1e-6)


def test_input_dropout_acts_only_in_training():
    model = small_model(input_dropout=0.5, dropout=0.0)
    inputs = random_ratings()
    np.testing.assert_allclose(model(inputs, training=False), model(inputs, training=False))
    assert not np.allclose(model(inputs, training=True), model(inputs, training=False))


@pytest.mark.parametrize("constrained", [False, True])
def test_call_at_equals_the_dense_output_at_those_positions(constrained):
    model = small_model(constrained=constrained)
    inputs = random_ratings()
    positions = tf.sparse.from_dense(inputs).indices
    expected = tf.gather_nd(model(inputs), positions)
    np.testing.assert_allclose(fast_path.outputs_at(model, tf.constant(inputs), positions, training=False),
                               expected, rtol=1e-5, atol=1e-6)


def test_paired_tests_tell_a_better_model_from_the_same_one():
    rng = np.random.default_rng(0)
    truth = [rng.integers(1, 6, 2000).astype(np.float32) for _ in range(3)]
    reference = [ratings + rng.normal(0, 1.0, ratings.shape) for ratings in truth]
    better = [ratings + rng.normal(0, 0.6, ratings.shape) for ratings in truth]
    tests = metrics.paired_tests(truth, better, reference, (1, 5))
    rmse = [(metrics.global_rmse(t, b, (1, 5)), metrics.global_rmse(t, r, (1, 5)))
            for t, b, r in zip(truth, better, reference)]
    assert tests["test_rmse_difference"] == pytest.approx(np.mean([b - r for b, r in rmse]))
    assert tests["test_rmse_difference"] < 0 and max(tests["p_per_split"]) < 1e-6
    assert tests["p_across_splits"] < 0.05
    same = metrics.paired_tests(truth, reference, reference, (1, 5))
    assert same == {"test_rmse_difference": 0.0, "p_per_split": [None, None, None], "p_across_splits": None}
