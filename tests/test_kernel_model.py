"""The kernelised layer (Sparse FC), GLocal-K's global kernel, full-batch L-BFGS training and both presets."""

import json

import numpy as np
import pytest
import tensorflow as tf

import evaluate
import kernel_model
import checkpoints
import lbfgs
import main
from conftest import write_ml100k


def numpy_kernel(u, v):
    """K[i, j] = max(0, 1 - ||u_i - v_j||^2), written out pair by pair."""
    return np.array([[max(0.0, 1.0 - float(np.sum((a - b) ** 2))) for b in v] for a in u])


def kernel_layer(n_in=6, units=4, spread=0.6, seed=0, activation="sigmoid"):
    """A built KernelDense whose embeddings are spread so that some pairs are beyond the kernel's support."""
    rng = np.random.default_rng(seed)
    layer = kernel_model.KernelDense(units, 2, activation, lambda_2=1.0, lambda_s=0.5)
    layer.build((None, n_in))
    layer.u.assign(rng.normal(0, spread, (n_in, 2)).astype(np.float32))
    layer.v.assign(rng.normal(0, spread, (units, 2)).astype(np.float32))
    layer.bias.assign(rng.normal(0, 0.1, units).astype(np.float32))
    return layer


def test_kernel_values_by_hand_lie_in_0_1_and_vanish_beyond_the_support():
    u = np.array([[0.0, 0.0], [2.0, 0.0], [0.5, 0.5]], np.float32)
    v = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 1.0]], np.float32)
    values = kernel_model.local_kernel(tf.constant(u), tf.constant(v)).numpy()
    np.testing.assert_allclose(values, [[1.0, 0.75, 0.0], [0.0, 0.0, 0.0], [0.5, 0.75, 0.5]], atol=1e-6)
    layer = kernel_layer(n_in=50, units=40, spread=0.8)
    values = layer.kernel_values().numpy()
    expected = numpy_kernel(layer.u.numpy(), layer.v.numpy())
    np.testing.assert_allclose(values, expected, atol=1e-5)
    assert values.min() >= 0.0 and values.max() <= 1.0
    beyond = expected == 0.0
    assert beyond.any() and (~beyond).any() and np.all(values[beyond] == 0.0)  # exactly zero, not just small


def test_layer_output_equals_the_dense_product_with_the_masked_kernel():
    layer = kernel_layer()
    inputs = np.random.default_rng(1).integers(0, 6, (5, 6)).astype(np.float32)  # 0 = unknown rating
    masked = layer.weight.numpy() * numpy_kernel(layer.u.numpy(), layer.v.numpy())
    expected = 1.0 / (1.0 + np.exp(-(inputs @ masked + layer.bias.numpy())))
    np.testing.assert_allclose(layer(inputs).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_gradients_reach_the_weights_and_both_embeddings():
    layer = kernel_layer()
    inputs = np.random.default_rng(2).integers(0, 6, (5, 6)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(inputs))) + layer.penalty()
    gradients = dict(zip(["weight", "u", "v", "bias"], tape.gradient(loss, [layer.weight, layer.u, layer.v,
                                                                             layer.bias])))
    for name, gradient in gradients.items():
        assert gradient is not None and np.abs(gradient.numpy()).sum() > 0, name
    # Weights whose kernel value is zero get gradient from the L2 penalty alone: lambda_2 * W.
    beyond = layer.kernel_values().numpy() == 0.0
    assert beyond.any()
    np.testing.assert_allclose(gradients["weight"].numpy()[beyond], layer.weight.numpy()[beyond], rtol=1e-5)


def test_penalty_is_the_papers_l2_regularisers():
    layer = kernel_layer()
    expected = 1.0 * np.sum(layer.weight.numpy() ** 2) / 2 + 0.5 * np.sum(layer.kernel_values().numpy() ** 2) / 2
    assert float(layer.penalty()) == pytest.approx(expected, rel=1e-5)


def test_global_convolution_by_hand_and_against_conv2d():
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    centre = np.zeros((3, 3), np.float32)
    centre[1, 1] = 2.0
    np.testing.assert_allclose(kernel_model.global_convolution(matrix, tf.constant(centre)).numpy(), 2 * matrix)
    right = np.zeros((3, 3), np.float32)
    right[1, 2] = 1.0  # each cell takes its right neighbour's value; the last column sees the zero padding
    shifted = np.concatenate([matrix[:, 1:], np.zeros((3, 1), np.float32)], axis=1)
    np.testing.assert_allclose(kernel_model.global_convolution(matrix, tf.constant(right)).numpy(), shifted)
    kernel = np.random.default_rng(3).normal(size=(3, 3)).astype(np.float32)
    reference = tf.nn.relu(tf.nn.conv2d(matrix[None, :, :, None], kernel.reshape(3, 3, 1, 1), 1, "SAME"))
    np.testing.assert_allclose(kernel_model.global_convolution(matrix, tf.constant(kernel)).numpy(),
                               reference.numpy()[0, :, :, 0], rtol=1e-5, atol=1e-5)


def glocal_model(n_rows=7, n_inputs=5):
    model = kernel_model.KernelAutoEncoder(n_inputs, n_rows, (1, 5), [6], "sigmoid", 2, 1.0, 0.1, 3, 0.5)
    model.build()
    return model


def test_global_kernel_shape_and_effect_on_a_tiny_matrix():
    model = glocal_model()
    matrix = np.random.default_rng(4).integers(0, 6, (7, 5)).astype(np.float32)
    kernel = model.global_kernel_of(model.encode(matrix)).numpy()
    assert kernel.shape == (3, 3)
    # The pooling: each row's mean reconstruction, times the pooling weights, times the dot scale.
    row_means = model(matrix).numpy().mean(axis=1)
    np.testing.assert_allclose(kernel.ravel(), 0.5 * row_means @ model.pooling_weights.numpy(), rtol=1e-4,
                               atol=1e-6)
    # Before training the stored kernel is zero; once set, the network reads the convolved matrix.
    model.global_kernel.assign(kernel)
    inputs = model.input_matrix(matrix)
    assert inputs.shape == matrix.shape and not np.allclose(inputs, matrix)
    np.testing.assert_allclose(inputs, kernel_model.global_convolution(matrix, tf.constant(kernel)).numpy())


def test_global_kernel_gradients_reach_the_pooling_and_the_local_weights():
    model = glocal_model()
    matrix = tf.constant(np.random.default_rng(5).integers(0, 6, (7, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
        global_kernel = model.global_kernel_of(model.encode(matrix))
        loss = tf.reduce_sum(model(kernel_model.global_convolution(matrix, global_kernel)))
    variables = [model.pooling_weights, model.hidden[0].weight, model.output_layer.u]
    for gradient in tape.gradient(loss, variables):
        assert gradient is not None and np.abs(gradient.numpy()).sum() > 0


def test_training_on_known_ratings_matches_the_dense_network_values_and_gradients():
    """The objective's sparse products (KnownRatings) give the dense network's outputs and gradients."""
    import scipy.sparse

    model = glocal_model(n_rows=9, n_inputs=8)
    rng = np.random.default_rng(7)
    for layer in model.hidden + [model.output_layer]:  # spread the embeddings: some kernel values are zero
        layer.u.assign(rng.normal(0, 0.5, layer.u.shape).astype(np.float32))
        layer.v.assign(rng.normal(0, 0.5, layer.v.shape).astype(np.float32))
    dense = np.where(rng.random((9, 8)) < 0.4, rng.integers(1, 6, (9, 8)), 0).astype(np.float32)
    known = kernel_model.KnownRatings(scipy.sparse.csr_matrix(dense))
    positions = np.argwhere(dense > 0)
    np.testing.assert_array_equal(known.positions.numpy(), positions)
    variables = model.trainable_variables

    def loss_and_gradients(sparse):
        with tf.GradientTape() as tape:
            if sparse:
                predicted = model.reconstruct_at(model.encode_known(known), known)
            else:
                predicted = tf.gather_nd(model(dense), positions)
            loss = tf.reduce_sum(tf.square(dense[dense > 0] - predicted))
        return predicted.numpy(), loss.numpy(), tape.gradient(loss, variables)

    dense_values, dense_loss, dense_gradients = loss_and_gradients(False)
    sparse_values, sparse_loss, sparse_gradients = loss_and_gradients(True)
    np.testing.assert_allclose(sparse_values, dense_values, rtol=1e-5, atol=1e-5)
    assert sparse_loss == pytest.approx(dense_loss, rel=1e-5)
    for variable, expected, actual in zip(variables, dense_gradients, sparse_gradients):
        if expected is None:  # the pooling weights: not in this loss
            assert actual is None, variable.name
            continue
        assert np.abs(expected.numpy()).sum() > 0, variable.name
        np.testing.assert_allclose(tf.convert_to_tensor(actual).numpy(), tf.convert_to_tensor(expected).numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=variable.name)


def test_lbfgs_lowers_the_objective_and_keeps_the_best_validation_epoch(tmp_path):
    import scipy.sparse

    rng = np.random.default_rng(6)
    dense = np.where(rng.random((30, 20)) < 0.4, rng.integers(1, 6, (30, 20)), 0).astype(np.float32)
    val_mask = (dense > 0) & (rng.random(dense.shape) < 0.2)
    train, val = scipy.sparse.csr_matrix(np.where(val_mask, 0, dense)), scipy.sparse.csr_matrix(
        np.where(val_mask, dense, 0))
    model = kernel_model.KernelAutoEncoder(20, 30, (1, 5), [8], "sigmoid", 2, 0.1, 0.01, 3, 1.0)
    model.build()
    batch = lbfgs.FullBatch(model, train, val)
    before = float(batch.objective(global_stage=False))
    history, first_stage, kept_epoch = lbfgs.train(model, train, val, [("pre", 3, 10, False), ("fine", 2, 5, True)],
                                                   5, 0.0, checkpoints.LbfgsCheckpoint(tmp_path, {}),
                                                   log=lambda line: None)
    assert [row["stage"] for row in history] == ["pre"] * 3 + ["fine"] * 2
    assert history[0]["loss"] < before / batch.n_train
    assert history[2]["loss"] < history[0]["loss"]
    assert first_stage is not None and np.abs(model.global_kernel.numpy()).sum() > 0
    best = min(row["val_rmse_clip"] for row in history if row["stage"] == "fine")
    assert history[kept_epoch - 1]["stage"] == "fine" and history[kept_epoch - 1]["val_rmse_clip"] == best
    assert float(batch.scores(True)["val_rmse_clip"]) == pytest.approx(best, abs=1e-6)  # the best epoch's weights


def test_tensorflow_lbfgs_finds_the_minimum_that_scipy_finds():
    """A convex quadratic and the Rosenbrock function: the TensorFlow L-BFGS ends where scipy's L-BFGS-B ends."""
    import scipy.optimize

    rng = np.random.default_rng(3)
    factor = rng.normal(size=(30, 30)).astype(np.float32)
    hessian, target = factor @ factor.T / 30 + np.eye(30, dtype=np.float32), rng.normal(size=30).astype(np.float32)

    def quadratic(x):
        return 0.5 * tf.tensordot(x - target, tf.linalg.matvec(hessian, x - target), 1)

    def rosenbrock(x):
        return tf.reduce_sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    for function, start, minimum in ((quadratic, np.zeros(30, np.float32), target),
                                     (rosenbrock, np.tile([-1.2, 1.0], 5).astype(np.float32), np.ones(10))):
        @tf.function
        def compute(x):
            x = tf.cast(x, tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = function(x)
            return value, tape.gradient(value, x)

        solver = lbfgs.TensorFlowLBFGS(compute, len(start))
        solver.start(tf.constant(start))
        for _ in range(500):
            _, status = solver.step()
            if int(status) != lbfgs.CONTINUE:
                break
        reference = scipy.optimize.minimize(lambda x: [np.float64(v) for v in compute(tf.constant(x))], start,
                                            jac=True, method="L-BFGS-B", options={"maxiter": 500})
        np.testing.assert_allclose(solver.x.numpy(), minimum, atol=2e-3)
        np.testing.assert_allclose(solver.x.numpy(), reference.x, atol=2e-3)


def test_both_lbfgs_solvers_reach_the_same_validation_rmse(tmp_path):
    """On a network regularised enough to have one minimum within reach (the synthetic data is tiny: with the
    preset's lambda the two solvers' different line searches lead to different overfitted weights)."""
    folder = write_ml100k(tmp_path / "ml-100k")
    val_rmse = {}
    for solver in ("tensorflow", "scipy"):
        results = tmp_path / solver
        assert main.main(["--preset", "sparsefc", "--dataset", "ml-100k", "--data-dir", str(folder), "--split", "u1",
                          "--epochs", "4", "--lbfgs-iterations", "25", "--layers", "24,24", "--lambda-2", "300",
                          "--lbfgs-solver", solver, "--results-dir", str(results)]) == 0
        val_rmse[solver] = json.loads((results / "metrics.json").read_text())["val_rmse"]
    assert val_rmse["tensorflow"] == pytest.approx(val_rmse["scipy"], abs=0.002)


def test_presets_use_the_papers_values_per_data_set():
    glocalk = main.parse_config(["--preset", "glocalk"])
    assert (glocalk["model"], glocalk["layers"], glocalk["kernel_dim"], glocalk["global_kernel_size"]) == (
        "kernel", [500, 500], 5, 3)
    assert (glocalk["lambda_2"], glocalk["lambda_s"], glocalk["dot_scale"]) == (70.0, 0.018, 0.5)
    small = main.parse_config(["--preset", "glocalk", "--dataset", "ml-100k", "--lambda-s", "0.01"])
    assert (small["lambda_2"], small["lambda_s"], small["dot_scale"], small["lbfgs_iterations"]) == (
        20.0, 0.01, 1.0, 5)
    assert main.parse_config(["--preset", "sparsefc"])["global_kernel_size"] == 0
    with pytest.raises(main.ConfigError, match="--distribute"):
        main.parse_config(["--preset", "sparsefc", "--distribute", "mirrored"])


SHORT = ["--epochs", "2", "--lbfgs-iterations", "3", "--finetune-epochs", "2", "--finetune-iterations", "3",
         "--layers", "24,24"]


@pytest.mark.parametrize("preset", ["sparsefc", "glocalk"])
def test_presets_train_a_few_steps_and_reload(preset, tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    results = tmp_path / preset
    assert main.main(["--preset", preset, "--dataset", "ml-100k", "--data-dir", str(folder), "--split", "u1",
                      "--results-dir", str(results), *SHORT]) == 0
    metrics = json.loads((results / "metrics.json").read_text())
    assert 0 < metrics["test_rmse"] < 2 and metrics["epochs"] == (4 if preset == "glocalk" else 2)
    assert (metrics["pre_training"] is not None) == (preset == "glocalk")
    history = (results / "history.csv").read_text().splitlines()
    assert len(history) == metrics["epochs"] + 1 and "val_rmse_clip" in history[0]
    assert not (results / "checkpoint.json").exists()
    assert evaluate.main(["--results-dir", str(results)]) == 0  # the saved model predicts the same
    rescored = sum(1 for _ in open(results / "predictions.tsv")) - 1
    assert rescored == metrics["n_test"]


def test_glocalk_pre_training_equals_the_sparsefc_preset(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    common = ["--dataset", "ml-100k", "--data-dir", str(folder), "--split", "u2", "--repeats", "2", *SHORT]
    assert main.main(["--preset", "glocalk", "--results-dir", str(tmp_path / "g"), *common]) == 0
    assert main.main(["--preset", "sparsefc", "--results-dir", str(tmp_path / "s"), *common]) == 0
    glocal = json.loads((tmp_path / "g" / "summary.json").read_text())
    sparse = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert [run["pre_training_test_rmse"] for run in glocal["runs"]] == pytest.approx(
        [run["test_rmse"] for run in sparse["runs"]], abs=1e-6)
    assert glocal["pre_training_test_rmse_mean"] == pytest.approx(sparse["test_rmse_mean"], abs=1e-6)
    assert "pre_training_test_rmse_mean" not in sparse


def test_interrupted_lbfgs_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    folder = write_ml100k(tmp_path / "ml-100k")
    args = ["--preset", "glocalk", "--dataset", "ml-100k", "--data-dir", str(folder), "--split", "u1", *SHORT]
    assert main.main([*args, "--results-dir", str(tmp_path / "whole")]) == 0
    save = checkpoints.LbfgsCheckpoint.save
    saves = []

    def save_then_interrupt(self, *arguments):
        save(self, *arguments)
        saves.append(1)
        if len(saves) == 3:  # after the first fine-tuning epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.LbfgsCheckpoint, "save", save_then_interrupt)
    assert main.main([*args, "--results-dir", str(tmp_path / "cut")]) == 130
    assert (tmp_path / "cut" / "checkpoint.json").is_file()
    monkeypatch.setattr(checkpoints.LbfgsCheckpoint, "save", save)
    assert main.main([*args, "--lambda-2", "5", "--resume", "--results-dir", str(tmp_path / "cut")]) == 2  # not its run
    assert main.main([*args, "--resume", "--results-dir", str(tmp_path / "cut")]) == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert resumed["test_rmse"] == pytest.approx(whole["test_rmse"], abs=1e-6)
    assert resumed["pre_training"] == pytest.approx(whole["pre_training"], abs=1e-6)  # kept with the checkpoint


def comparison_without_times(folder):
    """comparison.csv's rows, the seconds left out (the only column that may differ between equal runs)."""
    import csv

    with open(folder / "comparison.csv") as handle:
        return [{key: value for key, value in row.items() if "seconds" not in key} for row in csv.DictReader(handle)]


def test_compare_trains_sparsefc_once_as_glocalks_first_stage_and_resumes(tmp_path, monkeypatch):
    folder = write_ml100k(tmp_path / "ml-100k")
    common = ["--dataset", "ml-100k", "--data-dir", str(folder), "--split", "u1", "--repeats", "2", *SHORT]
    rows = ["--compare", "sparsefc,glocalk,user-item-bias"]
    assert main.main([*rows, *common, "--results-dir", str(tmp_path / "whole")]) == 0
    assert main.main(["--preset", "sparsefc", *common, "--results-dir", str(tmp_path / "alone")]) == 0
    alone = json.loads((tmp_path / "alone" / "summary.json").read_text())["runs"]
    for index, run in enumerate(alone):  # the first stage is exactly the sparsefc run, a member of its own
        member = tmp_path / "whole" / "sparsefc" / f"run-{index + 1}"
        metrics = json.loads((member / "metrics.json").read_text())
        assert metrics["test_rmse"] == pytest.approx(run["test_rmse"], abs=1e-6)
        assert (member / "predictions.npz").is_file() and (member / "model.keras").is_file()
        assert evaluate.main(["--results-dir", str(member)]) == 0
    table = comparison_without_times(tmp_path / "whole")
    assert [row["name"] for row in table] == ["user+item bias", "sparsefc preset", "glocalk preset",
                                              "blend of the above (fitted on validation)"]
    assert float(table[1]["test_rmse_mean"]) == pytest.approx(
        json.loads((tmp_path / "alone" / "summary.json").read_text())["test_rmse_mean"], abs=1e-6)
    blend = json.loads((tmp_path / "whole" / "blend.json").read_text())["splits"]
    assert all({row["member"].split("/")[-2] for row in split["members"]} == {"user-item-bias", "sparsefc", "glocalk"}
               for split in blend)

    save = checkpoints.LbfgsCheckpoint.save
    saves = []

    def save_then_interrupt(self, *arguments):
        save(self, *arguments)
        saves.append(1)
        if len(saves) == 7:  # the second split's glocalk, in its first fine-tuning epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.LbfgsCheckpoint, "save", save_then_interrupt)
    cut = tmp_path / "cut"
    assert main.main([*rows, *common, "--results-dir", str(cut)]) == 130
    assert (cut / "glocalk" / "run-2" / "checkpoint-first-stage.weights.h5").is_file()
    assert not (cut / "sparsefc" / "run-2").exists() and (cut / "sparsefc" / "run-1" / "metrics.json").is_file()
    monkeypatch.setattr(checkpoints.LbfgsCheckpoint, "save", save)
    assert main.main([*rows, *common, "--results-dir", str(cut), "--resume"]) == 0
    assert comparison_without_times(cut) == comparison_without_times(tmp_path / "whole")
