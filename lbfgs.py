"""Full-batch training with L-BFGS, as Sparse FC and GLocal-K train: scipy's L-BFGS-B on TensorFlow's gradients.

The objective is the papers': 1/2 * the sum of squared errors over the known train ratings, plus the layers'
penalties. An epoch is one call of L-BFGS-B of at most `iterations` iterations over the whole train matrix (its
memory restarts each epoch, as in the papers' code). After each epoch the validation RMSE decides: the best weights
are kept, and a stage ends after `patience` epochs without an improvement of at least `min_delta`. The test ratings
are never read here. GLocal-K trains in two stages: the local autoencoder alone (pre-training), then with the
global kernel (fine-tuning), starting from the pre-training's best weights.

After every epoch the current and the best weights and the history are saved (checkpoint.*), so an interrupted
run continues with --resume from its last finished epoch.
"""

import math
import time

import keras
import numpy as np
import scipy.optimize
import tensorflow as tf

import kernel_model


class FullBatch:
    """The whole train matrix and the train and validation ratings as tensors; the model's objective and its
    predictions at those ratings."""

    def __init__(self, model, train_matrix, val_matrix):
        self.model = model
        self.known = kernel_model.KnownRatings(train_matrix)  # the objective's products read only these
        self.dense_inputs = tf.constant(train_matrix.toarray(), tf.float32) if model.global_kernel_size else None
        self.train_positions, self.train_ratings = self.known.positions, self.known.values
        self.val_positions, self.val_ratings = positions_and_ratings(val_matrix)
        self.n_train = int(self.train_ratings.shape[0])

    def codes(self, global_stage):
        """The hidden codes of all rows: of the train matrix (local stage), or of its convolution with the global
        kernel that the model computes from its codes of the same matrix (GLocal-K's fine-tuning: gradients flow
        through both)."""
        local_codes = self.model.encode_known(self.known)
        if not global_stage:
            return local_codes
        global_kernel = self.model.global_kernel_of(local_codes)
        return self.model.encode(kernel_model.global_convolution(self.dense_inputs, global_kernel))

    def objective(self, global_stage):
        predicted = self.model.reconstruct_at(self.codes(global_stage), self.known)
        return 0.5 * tf.reduce_sum(tf.square(self.train_ratings - predicted)) + self.model.penalty()

    @tf.function
    def scores(self, global_stage):
        """Per-rating objective and clipped global RMSE on the train and the validation ratings."""
        outputs = self.model.output_layer(self.codes(global_stage))
        penalty = self.model.penalty() / self.n_train
        result = {}
        for prefix, positions, ratings in (("", self.train_positions, self.train_ratings),
                                           ("val_", self.val_positions, self.val_ratings)):
            predicted = tf.gather_nd(outputs, positions)
            result[f"{prefix}loss"] = 0.5 * tf.reduce_mean(tf.square(ratings - predicted)) + penalty
            clipped = tf.clip_by_value(predicted, *self.model.rating_scale)
            result[f"{prefix}rmse_clip"] = tf.sqrt(tf.reduce_mean(tf.square(ratings - clipped)))
        return result


def positions_and_ratings(matrix):
    coo = matrix.tocoo()
    positions = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
    return tf.constant(positions), tf.constant(coo.data, tf.float32)


def stage_variables(model, global_stage):
    """Pre-training optimises the local autoencoder's weights; fine-tuning also the global kernel's pooling
    weights (the stored global_kernel is not trainable)."""
    variables = [variable for layer in model.hidden + [model.output_layer] for variable in layer.trainable_variables]
    return variables + [model.pooling_weights] if global_stage else variables


def value_and_gradient_function(batch, variables, global_stage):
    """f(x) -> (objective, gradient) on a flat float64 vector of the variables, as scipy's minimize wants it. The
    conversions between scipy's float64 and the model's float32 happen inside the graph: done in NumPy they cost
    two more copies of all the variables per evaluation (benchmark.py --lbfgs measures both)."""
    compute = flat_objective_and_gradient(batch, variables, global_stage)

    def value_and_gradient(x):
        loss, gradient = compute(tf.constant(x))
        return float(loss), gradient.numpy()

    return value_and_gradient


def flat_objective_and_gradient(batch, variables, global_stage):
    """A graph function: the variables set from a flat vector, the objective there and its gradient, flattened
    in the vector's dtype."""
    sizes = [int(np.prod(variable.shape)) for variable in variables]

    @tf.function
    def compute(flat):
        for variable, part in zip(variables, tf.split(tf.cast(flat, tf.float32), sizes)):
            variable.assign(tf.reshape(part, variable.shape))
        with tf.GradientTape() as tape:
            loss = batch.objective(global_stage)
        gradients = tape.gradient(loss, variables)
        return loss, tf.cast(tf.concat([tf.reshape(gradient, [-1]) for gradient in gradients], axis=0), flat.dtype)

    return compute


def flat_values(variables):
    return np.concatenate([variable.numpy().ravel() for variable in variables]).astype(np.float64)


def assign_flat_values(variables, flat):
    offsets = np.cumsum([int(np.prod(variable.shape)) for variable in variables])[:-1]
    for variable, part in zip(variables, np.split(flat, offsets)):
        variable.assign(part.reshape(variable.shape).astype(np.float32))


def run_epoch(batch, variables, value_and_gradient, iterations, global_stage):
    """One call of L-BFGS-B of at most `iterations` iterations, with a progress bar of its objective. Returns (the
    iterations run, the scores after it, its seconds)."""
    started = time.perf_counter()
    progress = keras.utils.Progbar(iterations, stateful_metrics=["objective"], unit_name="iteration")

    def show(intermediate_result):  # scipy passes the iterate and its objective under this parameter name
        progress.add(1, [("objective", intermediate_result.fun)])

    result = scipy.optimize.minimize(value_and_gradient, flat_values(variables), jac=True, method="L-BFGS-B",
                                     options={"maxiter": iterations, "maxcor": 10}, callback=show)
    if result.nit < iterations:  # stopped early (converged): end the bar's line, which a full bar ends itself
        progress.update(result.nit, finalize=True)
    assign_flat_values(variables, result.x)  # L-BFGS' answer, which need not be its last trial point
    scores = {key: float(value) for key, value in batch.scores(global_stage).items()}
    return int(result.nit), scores, round(time.perf_counter() - started, 3)


# A stage's selection state when it begins: the best validation RMSE so far, its epoch, epochs without improvement.
NEW_STAGE = {"stage_epoch": 0, "best_val": math.inf, "best_epoch": None, "bad_epochs": 0}


def scores_text(scores):
    return (f"loss {scores['loss']:.4f}, train RMSE {scores['rmse_clip']:.4f}, validation RMSE "
            f"{scores['val_rmse_clip']:.4f}")


def train(model, train_matrix, val_matrix, stages, patience, min_delta, checkpoint, resume=False, log=print,
          on_epoch=None):
    """Train through `stages`, a list of (name, epochs, iterations per epoch, global_stage). The model ends with
    the best weights (by validation RMSE) of the last stage and, for GLocal-K, their global kernel stored.
    Returns (the history: one dict per epoch, the first stage's best weights or None when this call resumed after
    it, the epoch whose weights the model ends with). KeyboardInterrupt propagates; the last checkpoint stays."""
    batch = FullBatch(model, train_matrix, val_matrix)
    state = {"history": [], "stage": 0, **NEW_STAGE}
    best_weights = first_stage_weights = None
    if resume:
        state, best_weights = checkpoint.load(model)
    for stage_index in range(state["stage"], len(stages)):
        name, epochs, iterations, global_stage = stages[stage_index]
        variables = stage_variables(model, global_stage)
        value_and_gradient = value_and_gradient_function(batch, variables, global_stage)
        log(f"Stage {name}: up to {epochs} epochs of {iterations} L-BFGS iterations on the whole train matrix")
        while state["stage_epoch"] < epochs and state["bad_epochs"] < patience:
            iterations_run, scores, seconds = run_epoch(batch, variables, value_and_gradient, iterations, global_stage)
            state["stage_epoch"] += 1
            row = {"epoch": len(state["history"]) + 1, "stage": name, "iterations": iterations_run, **scores,
                   "seconds": seconds}
            state["history"].append(row)
            if not all(math.isfinite(value) for value in scores.values()):
                raise FloatingPointError(f"the objective became NaN or infinite in epoch {row['epoch']}")
            improved = scores["val_rmse_clip"] < state["best_val"] - min_delta
            if improved:
                state.update(best_val=scores["val_rmse_clip"], best_epoch=row["epoch"], bad_epochs=0)
                best_weights = model.get_weights()
            else:
                state["bad_epochs"] += 1
            log(f"epoch {row['epoch']} ({name} {state['stage_epoch']}/{epochs}, {iterations_run} iterations, "
                f"{seconds:.1f} s): {scores_text(scores)}{' (best)' if improved else ''}")
            checkpoint.save(model, best_weights, state)
            if on_epoch:
                on_epoch(row)
            if iterations_run == 0:
                break  # converged: another epoch would start from the same point
        model.set_weights(best_weights)  # the next stage starts from, and the last one ends with, the best weights
        if stage_index == 0:
            first_stage_weights = best_weights
        if stage_index + 1 < len(stages):  # the next stage selects among its own epochs
            state.update(stage=stage_index + 1, **NEW_STAGE)
    if model.global_kernel_size:
        model.global_kernel.assign(model.global_kernel_of(model.encode_known(batch.known)))
    return state["history"], first_stage_weights, state.get("best_epoch")
