"""Full-batch training with L-BFGS, as Sparse FC and GLocal-K train: an L-BFGS whose state and loop live in
TensorFlow (the default), or scipy's L-BFGS-B on TensorFlow's gradients (the papers' optimizer).

The objective is the papers': 1/2 * the sum of squared errors over the known train ratings, plus the layers'
penalties. An epoch is at most `iterations` L-BFGS iterations over the whole train matrix (its memory restarts
each epoch, as in the papers' code). After each epoch the validation RMSE decides: the best weights
are kept, and a stage ends after `patience` epochs without an improvement of at least `min_delta`. The test ratings
are never read here. GLocal-K trains in two stages: the local autoencoder alone (pre-training), then with the
global kernel (fine-tuning), starting from the pre-training's best weights.

After every epoch the current and the best weights and the history are saved (checkpoint.*), so an interrupted
run continues with --resume from its last finished epoch.
"""

import math
import time

import numpy as np
import scipy.optimize
import tensorflow as tf

import kernel_model
import utils


class FullBatch:
    """The whole train matrix and the train and validation ratings (none for a refit, which trains on them) as
    tensors; the model's objective and its predictions at those ratings."""

    def __init__(self, model, train_matrix, val_matrix):
        self.model = model
        self.known = kernel_model.KnownRatings(train_matrix)  # the objective's products read only these
        self.dense_inputs = tf.constant(train_matrix.toarray(), tf.float32) if model.global_kernel_size else None
        self.train_positions, self.train_ratings = self.known.positions, self.known.values
        self.validation = [("val_", *positions_and_ratings(val_matrix))] if val_matrix is not None else []
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

    @tf.function(autograph=False)  # no control flow on tensors: nothing for autograph to convert, only time lost
    def scores(self, global_stage):
        """Per-rating objective and clipped global RMSE on the train and the validation ratings."""
        outputs = self.model.output_layer(self.codes(global_stage))
        penalty = self.model.penalty() / self.n_train
        result = {}
        for prefix, positions, ratings in [("", self.train_positions, self.train_ratings), *self.validation]:
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


def flat_objective_and_gradient(batch, variables, global_stage):
    """A graph function: the variables set from a flat vector, the objective there and its gradient, flattened
    in the vector's dtype."""
    sizes = [int(np.prod(variable.shape)) for variable in variables]

    @tf.function(autograph=False)  # as FullBatch.scores: the model's code has no control flow on tensors
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


def flat_tensor(variables):
    """The variables as one float32 vector, in TensorFlow (no copy to NumPy)."""
    return tf.concat([tf.reshape(variable, [-1]) for variable in variables], axis=0)


def assign_flat_values(variables, flat):
    offsets = np.cumsum([int(np.prod(variable.shape)) for variable in variables])[:-1]
    for variable, part in zip(variables, np.split(np.asarray(flat), offsets)):
        variable.assign(part.reshape(variable.shape).astype(np.float32))


# ----------------------------------------------------------------------------------------------------------------
# The two solvers of an epoch. Both restart their memory every epoch, as the papers' code did.

def scipy_epoch(compute, variables, iterations, progress):
    """scipy's L-BFGS-B (the algorithm the Sparse FC and GLocal-K papers ran): the weights cross to NumPy in
    float64 and back at every evaluation. Returns the iterations run."""

    def value_and_gradient(x):
        loss, gradient = compute(tf.constant(x))  # the float64/float32 conversions happen inside the graph
        return float(loss), gradient.numpy()

    def show(intermediate_result):  # scipy passes the iterate and its objective under this parameter name
        progress(intermediate_result.fun)

    result = scipy.optimize.minimize(value_and_gradient, flat_values(variables), jac=True, method="L-BFGS-B",
                                     options={"maxiter": iterations, "maxcor": MEMORY}, callback=show)
    assign_flat_values(variables, result.x)  # L-BFGS' answer, which need not be its last trial point
    return int(result.nit)


MEMORY = 10  # correction pairs kept (scipy's maxcor)
SUFFICIENT_DECREASE, CURVATURE = 1e-3, 0.9  # the strong Wolfe conditions' constants, scipy's L-BFGS-B's
LINE_SEARCH_EVALUATIONS = 20  # at most, per iteration (scipy's too)
RELATIVE_DECREASE = 2.2e-9  # stop once an iteration lowers the objective by less than this, relatively (scipy's)
CONTINUE, CONVERGED, FAILED = 0, 1, 2  # what a step returns


class TensorFlowLBFGS:
    """L-BFGS whose state (float32 iterate, gradient and MEMORY correction pairs) and whole step (the two-loop
    recursion, a line search enforcing the strong Wolfe conditions by bracketing and safeguarded cubic
    interpolation, as Nocedal & Wright's Algorithms 3.5-3.6) live in TensorFlow. Nothing crosses to NumPy: on a GPU
    the weights never leave it. `compute(flat) -> (objective, gradient)` is the objective on a flat vector."""

    def __init__(self, compute, size):
        self.compute = compute
        zeros = tf.zeros([size])
        self.x, self.gradient = tf.Variable(zeros), tf.Variable(zeros)
        self.objective = tf.Variable(0.0)
        self.s, self.y = tf.Variable(tf.zeros([MEMORY, size])), tf.Variable(tf.zeros([MEMORY, size]))
        self.rho = tf.Variable(tf.zeros([MEMORY]))  # 1 / (y . s) of each stored pair; 0 marks an empty slot
        self.pairs = tf.Variable(0)  # pairs stored since the last restart

    @tf.function
    def start(self, x):
        """A fresh memory at x."""
        objective, gradient = self.compute(x)
        self.x.assign(x)
        self.objective.assign(objective)
        self.gradient.assign(gradient)
        self.forget()
        return objective

    def forget(self):
        self.rho.assign(tf.zeros([MEMORY]))
        self.pairs.assign(0)

    def direction(self):
        """-H g by the two-loop recursion over the stored pairs, newest first (empty slots have rho 0 and change
        nothing). With no pairs, the steepest descent of unit length (scipy's first step)."""
        gradient, newest = self.gradient.read_value(), (self.pairs - 1) % MEMORY
        slots = [(self.pairs - 1 - age) % MEMORY for age in range(MEMORY)]
        alphas, q = [], gradient
        for slot in slots:
            alpha = self.rho[slot] * tf.tensordot(tf.gather(self.s, slot), q, 1)
            q -= alpha * tf.gather(self.y, slot)
            alphas.append(alpha)
        y_newest = tf.gather(self.y, newest)
        gamma = tf.cond(self.pairs > 0, lambda: tf.tensordot(tf.gather(self.s, newest), y_newest, 1)
                        / tf.tensordot(y_newest, y_newest, 1), lambda: 1.0 / tf.norm(gradient))
        r = gamma * q
        for slot, alpha in zip(reversed(slots), reversed(alphas)):
            r += tf.gather(self.s, slot) * (alpha - self.rho[slot] * tf.tensordot(tf.gather(self.y, slot), r, 1))
        return -r

    @tf.function
    def step(self):
        """One iteration: direction, line search, the new pair. Returns (objective, CONTINUE / CONVERGED /
        FAILED); a failed line search first retries once with the memory forgotten, as scipy's does."""
        direction = self.direction()
        slope = tf.tensordot(self.gradient, direction, 1)
        if slope >= 0.0:  # not a descent direction (rounding): forget the memory, go down the gradient
            self.forget()
            direction = self.direction()
            slope = tf.tensordot(self.gradient, direction, 1)
        step, objective, gradient = line_search(self.compute, self.x, self.objective, slope, direction)
        status = CONTINUE
        if step > 0.0:
            s, y = step * direction, gradient - self.gradient
            sy = tf.tensordot(s, y, 1)
            if sy > 1.2e-7 * tf.tensordot(y, y, 1):  # keep the pair only where curvature is positive
                slot = self.pairs % MEMORY
                self.s[slot].assign(s)
                self.y[slot].assign(y)
                self.rho[slot].assign(1.0 / sy)
                self.pairs.assign_add(1)
            decrease = self.objective - objective
            if decrease <= RELATIVE_DECREASE * tf.maximum(tf.maximum(tf.abs(self.objective), tf.abs(objective)), 1.0):
                status = CONVERGED
            self.x.assign_add(s)
            self.objective.assign(objective)
            self.gradient.assign(gradient)
        elif self.pairs > 0:
            self.forget()
        else:
            status = FAILED
        return self.objective.read_value(), status


def line_search(compute, x, objective, slope, direction):
    """A step length along `direction` that satisfies the strong Wolfe conditions, from 1 (N&W 3.5-3.6 in one
    loop): [low, high] brackets it once a trial is too long or climbs; until then the step doubles. Returns
    (step, objective, gradient) there; step 0 when no trial lowered the objective enough."""
    low, f_low, slope_low, g_low = 0.0, objective, slope, tf.zeros_like(x)
    high, f_high, slope_high = 0.0, objective, slope  # meaningful once bracketed
    bracketed, done, trial = False, False, 1.0
    for _ in tf.range(LINE_SEARCH_EVALUATIONS):
        f, g = compute(x + trial * direction)
        slope_trial = tf.tensordot(g, direction, 1)
        if not f <= objective + SUFFICIENT_DECREASE * trial * slope or f >= f_low:  # too long (NaN too)
            high, f_high, slope_high, bracketed = trial, f, slope_trial, True
        elif tf.abs(slope_trial) <= -CURVATURE * slope:
            low, f_low, slope_low, g_low, done = trial, f, slope_trial, g, True
        else:
            if bracketed and slope_trial * (high - low) >= 0.0 or not bracketed and slope_trial >= 0.0:
                high, f_high, slope_high, bracketed = low, f_low, slope_low, True
            low, f_low, slope_low, g_low = trial, f, slope_trial, g
        if done:
            break
        trial = tf.cond(bracketed, lambda: interpolate(low, f_low, slope_low, high, f_high, slope_high),
                        lambda: 2.0 * trial)
    return low, f_low, g_low


def interpolate(a, f_a, slope_a, b, f_b, slope_b):
    """The minimiser of the cubic through two points' values and slopes, kept inside [a, b] by 1% of its width;
    bisection where the cubic has none there (or a value is not finite)."""
    d1 = slope_a + slope_b - 3.0 * (f_a - f_b) / (a - b)
    d2 = tf.sign(b - a) * tf.sqrt(tf.maximum(d1 * d1 - slope_a * slope_b, 0.0))
    cubic = b - (b - a) * (slope_b + d2 - d1) / (slope_b - slope_a + 2.0 * d2)
    margin = 0.01 * tf.abs(b - a)
    inside = (tf.math.is_finite(cubic) & (cubic > tf.minimum(a, b) + margin) & (cubic < tf.maximum(a, b) - margin)
              & (d1 * d1 - slope_a * slope_b >= 0.0))
    return tf.where(inside, cubic, 0.5 * (a + b))


def tensorflow_epoch(solver, variables, iterations, progress):
    """`iterations` steps of the TensorFlow L-BFGS from the variables' values, its memory fresh. Returns the
    iterations run."""
    solver.start(flat_tensor(variables))
    iterations_run = 0
    while iterations_run < iterations:
        objective, status = solver.step()
        if int(status) == FAILED:
            break
        iterations_run += 1
        progress(float(objective))
        if int(status) == CONVERGED:
            break
    sizes = [int(np.prod(variable.shape)) for variable in variables]
    for variable, part in zip(variables, tf.split(solver.x, sizes)):  # the iterate, not the last trial point
        variable.assign(tf.reshape(part, variable.shape))
    return iterations_run


def run_epoch(batch, variables, solve, iterations, global_stage):
    """One epoch of `solve` (scipy_epoch or a bound tensorflow_epoch) of at most `iterations` iterations, with
    progress. Returns (the iterations run, the scores after it, its seconds)."""
    started = time.perf_counter()
    progress = utils.Progress(iterations, "iteration")
    iterations_run = solve(variables, iterations, lambda objective: progress.add(objective=objective))
    progress.done()
    scores = {key: float(value) for key, value in batch.scores(global_stage).items()}
    return iterations_run, scores, round(time.perf_counter() - started, 3)


def epoch_solver(solver, compute, variables):
    """The epoch function of the chosen solver ('tensorflow' or 'scipy') over these variables, given their
    objective `compute(flat) -> (objective, gradient)`: f(variables, iterations, progress) -> iterations run."""
    if solver == "scipy":
        return lambda variables, iterations, progress: scipy_epoch(compute, variables, iterations, progress)
    state = TensorFlowLBFGS(compute, sum(int(np.prod(variable.shape)) for variable in variables))
    return lambda variables, iterations, progress: tensorflow_epoch(state, variables, iterations, progress)


# A stage's selection state when it begins: the best validation RMSE so far, its epoch, epochs without improvement.
NEW_STAGE = {"stage_epoch": 0, "best_val": math.inf, "best_epoch": None, "bad_epochs": 0}


def stage_kept_epoch(rows, min_delta):
    """The epoch a stage keeps, from its history rows: its last improvement of the validation RMSE by more than
    min_delta (train's rule)."""
    best, kept = math.inf, None
    for row in rows:
        if row["val_rmse_clip"] < best - min_delta:
            best, kept = row["val_rmse_clip"], row["epoch"]
    return kept


def scores_text(scores):
    text = f"loss {scores['loss']:.4f}, train RMSE {scores['rmse_clip']:.4f}"
    return text + (f", validation RMSE {scores['val_rmse_clip']:.4f}" if "val_rmse_clip" in scores else "")


def train(model, train_matrix, val_matrix, stages, patience, min_delta, checkpoint, resume=False, log=print,
          on_epoch=None, solver="tensorflow"):
    """Train through `stages`, a list of (name, epochs, iterations per epoch, global_stage), with `solver`; the
    model ends with the best weights (by validation RMSE) of the last stage (GLocal-K: their global kernel stored),
    or with val_matrix None (a refit) each stage's last. Returns (the history, one dict per epoch; the first
    stage's best weights; the kept epoch). On KeyboardInterrupt the checkpoint stays."""
    batch, select = FullBatch(model, train_matrix, val_matrix), val_matrix is not None
    state = {"history": [], "stage": 0, **NEW_STAGE}
    best_weights = first_stage_weights = None
    if resume:
        state, best_weights, first_stage_weights = checkpoint.load(model)
    for stage_index in range(state["stage"], len(stages)):
        name, epochs, iterations, global_stage = stages[stage_index]
        variables = stage_variables(model, global_stage)
        solve = epoch_solver(solver, flat_objective_and_gradient(batch, variables, global_stage), variables)
        log(f"Stage {name}: up to {epochs} epochs of {iterations} L-BFGS iterations on the whole train matrix")
        while state["stage_epoch"] < epochs and state["bad_epochs"] < patience:
            iterations_run, scores, seconds = run_epoch(batch, variables, solve, iterations, global_stage)
            state["stage_epoch"] += 1
            row = {"epoch": len(state["history"]) + 1, "stage": name, "iterations": iterations_run, **scores,
                   "seconds": seconds}
            state["history"].append(row)
            if not all(math.isfinite(value) for value in scores.values()):
                raise FloatingPointError(f"the objective became NaN or infinite in epoch {row['epoch']}")
            improved = not select or scores["val_rmse_clip"] < state["best_val"] - min_delta
            if improved:  # a refit has no validation RMSE: its best_val stays None, every epoch "best"
                state.update(best_val=scores.get("val_rmse_clip"), best_epoch=row["epoch"], bad_epochs=0)
                best_weights = model.get_weights()
            else:
                state["bad_epochs"] += 1
            log(f"epoch {row['epoch']} ({name} {state['stage_epoch']}/{epochs}, {iterations_run} iterations, "
                f"{seconds:.1f} s): {scores_text(scores)}{' (best)' if improved and select else ''}")
            checkpoint.save(model, best_weights, state, first_stage_weights)
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
