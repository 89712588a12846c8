"""From prepared data to a trained network: build the network, batch the data, train it with Keras' fit (the deep
autoencoder) or full-batch L-BFGS (the kernel networks), inside one Session that both trainers share.

The Session holds what a run does around its trainer: resume or start afresh, CometML from the first epoch to the
final metrics, Ctrl-C and SIGTERM stopping the run with its checkpoint kept, and the report of a diverged run.
"""

import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import data_processor
import distribute
import inference
import kernel_model
import lbfgs
import model as model_module
import reporting
import utils
from checkpoints import RESUME_KEYS, KerasCheckpoint, LbfgsCheckpoint, ResumableEarlyStopping
from comet_logger import CometLogger
from kernel_model import KERNEL_MODEL_KEYS
from model import MODEL_KEYS


class Session:
    """One training session, whichever the trainer:

        with Session(config, record, results_dir, chief) as session:
            history = fit_keras(config, network, prepared, session)   # or fit_lbfgs
            ... evaluate, save, session.comet.log_metrics(...)
        if session.interrupted: ...

    On entry: resume (the checkpoint must match this run) or clear the previous run's files, start CometML, let
    Ctrl-C and SIGTERM stop the run. On exit: end CometML once, whatever happened; an interrupt is reported with
    the command that resumes, and ends the block quietly (session.interrupted)."""

    def __init__(self, config, record, results_dir, chief=True, tags=()):
        self.config, self.record, self.results_dir, self.chief = config, record, Path(results_dir), chief
        run_config = {**{key: record[key] for key in [*RESUME_KEYS, "data_files"]}, "machines": [record["machine"]]}
        # Several workers write every epoch: the time between writes could differ between them, their epochs not.
        every_seconds = config["checkpoint_seconds"] if config["distribute"] == "none" else 0
        self.checkpoint = LbfgsCheckpoint(results_dir, run_config) if config["model"] == "kernel" else \
            KerasCheckpoint(results_dir, run_config, every_seconds)
        self.tags = [config["dataset"], f"split-{config['split']}", f"preset-{config['preset']}", *tags]
        self.initial_epoch, self.interrupted, self.diverged = 0, False, False

    def __enter__(self):
        if self.config["resume"]:
            self.checkpoint.check_resumable()
            state = self.checkpoint.state()
            self.initial_epoch = len(state["history"])
            earlier = state["config"].get("machines", [reporting.UNRECORDED_MACHINE])
            self.checkpoint.run_config["machines"] = [*earlier, *(machine for machine in self.machines()
                                                                  if machine not in earlier)]
            print(f"Resuming from the checkpoint of epoch {self.initial_epoch} in {self.results_dir}")
        else:
            reporting.clear_previous_run(self.results_dir)
        self.comet = CometLogger(self.config["comet_project"], self.results_dir, self.tags, enabled=self.chief)
        self.comet.log_parameters({key: str(value) for key, value in self.record.items()})
        signal.signal(signal.SIGINT, signal.default_int_handler)  # also where the shell ignores it (background)
        signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind, error, traceback):
        self.comet.end()
        if kind is not KeyboardInterrupt:
            return False
        self.interrupted = True
        finished = self.checkpoint.finished_epochs()
        if finished:
            print(f"\nInterrupted. The last checkpoint, of epoch {finished}, is in "
                  f"{self.results_dir}; continue with: python3 main.py --resume --results-dir {self.results_dir} "
                  f"(and the same other flags).", file=sys.stderr)
        else:
            print(f"\nInterrupted with no checkpoint to continue from in {self.results_dir}: run the same command "
                  f"again.", file=sys.stderr)
        return True

    def train_seconds(self):
        return time.perf_counter() - self.started

    def machines(self):
        """Every machine that trained this run, a resumed run's earlier ones first (its checkpoints carry them)."""
        return self.checkpoint.run_config["machines"]

    def report_divergence(self, epoch, fix, evaluated):
        """A NaN or infinite loss in `epoch`: say so truthfully; `evaluated`: the last good checkpoint is loaded
        and will be evaluated."""
        self.diverged = True
        message = f"error: the loss became NaN or infinite in epoch {epoch}: training diverged. Fix: {fix}. "
        if not self.checkpoint.exists():
            message += "No epoch finished, so no checkpoint exists and nothing was evaluated."
            utils.save_json(self.results_dir / "metrics.json", {"diverged": True, "epochs": 0, "config": self.record})
        else:
            message += (f"The last good checkpoint (epoch {self.checkpoint.finished_epochs()}) is kept in "
                        f"{self.results_dir}"
                        + (" and evaluated." if evaluated else "."))
        print(message, file=sys.stderr)


def raise_keyboard_interrupt(signum, frame):
    """SIGTERM is handled like Ctrl-C: the run stops and keeps its last checkpoint."""
    raise KeyboardInterrupt


# ----------------------------------------------------------------------------------------------------------------
# The deep autoencoder: Keras' fit on row batches.

def resolve_precision(precision):
    """'auto' becomes bfloat16 where the hardware multiplies it natively, float32 elsewhere."""
    if precision != "auto":
        return precision
    return "bfloat16" if native_bfloat16() else "float32"


def native_bfloat16():
    """Whether this machine multiplies bfloat16 natively, so that mixed precision is faster, not slower."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0)) >= (8, 0)
    try:
        cpu_flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in cpu_flags or "avx512_bf16" in cpu_flags


def build_model(config, prepared, precision):
    """The autoencoder for this data (row length, rating scale) and its optimizer, compiled and built."""
    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    low, high, _ = prepared.data.scale
    network = model_module.DeepAutoEncoder(prepared.shape[1], (low, high), **{key: config[key] for key in MODEL_KEYS})
    if config["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(config["learning_rate"], momentum=config["momentum"])
    else:
        optimizer = keras.optimizers.Adam(config["learning_rate"])
    network.compile(optimizer=optimizer, jit_compile=False)  # XLA measured slower than oneDNN's kernels on CPU
    network.build()
    optimizer.build(network.trainable_variables)  # its state too, inside a tf.distribute scope where there is one
    return network


def training_batches(config, prepared, strategy=None):
    """The protocol of the seed: the input is always the train matrix; the targets are the train ratings when
    training, the validation ratings when validating. The fast path keeps all of them sparse; the dense path (the
    plain reference) feeds dense arrays. Returns (the training batches, the validation batches, the steps of an
    epoch or None for all batches). Under tf.distribute each global batch is cut into per-replica slices, and the
    training batches come from one endless iterator that sees the shuffles one device sees: Keras' fit starts a
    fresh pass over a finite dataset twice per epoch (the second at the end of the epoch, unused), so one device
    trains on every other shuffle, and so does this."""
    train_inputs, train_targets, val_targets = prepared.train, prepared.train, prepared.val
    if config["training_path"] == "dense":
        train_inputs = data_processor.fill_unknown(train_inputs.toarray(), config["input_fill"])
        train_targets, val_targets = train_targets.toarray(), val_targets.toarray()
    else:  # the train matrix is held once (as tensors) for the inputs and targets of both datasets
        train_inputs = train_targets = SparseRows(train_inputs)
        val_targets = SparseRows(val_targets)
    train_data = row_batches(train_inputs, train_targets, config["batch_size"], shuffle_seed=config["seed"])
    val_data = row_batches(train_inputs, val_targets, config["validation_batch_size"])
    if not strategy:
        return train_data, val_data, None
    steps = -(-train_inputs.shape[0] // config["batch_size"])
    every_other_shuffle = train_data.repeat().enumerate().filter(lambda index, batch: index // steps % 2 == 0)
    train_data = every_other_shuffle.map(lambda index, batch: batch)
    return (distribute.distribute_batches(strategy, train_data), distribute.distribute_batches(strategy, val_data),
            steps)


class SparseRows:
    """A CSR matrix held once as tensors (its row pointers, column indices and values), read a batch of rows at a
    time as a tf.SparseTensor in canonical order: no per-row copies in tf.data's shuffle buffer, which for the
    Netflix training matrix would hold it again, twice (inputs and targets)."""

    def __init__(self, matrix):
        matrix.sort_indices()  # in place; rows are in order already
        self.shape = matrix.shape
        self.row_starts = tf.constant(matrix.indptr.astype(np.int64))
        self.cols = tf.constant(matrix.indices.astype(np.int32, copy=False))
        self.values = tf.constant(matrix.data.astype(np.float32, copy=False))

    def __call__(self, rows):
        """The given rows (an int64 vector), in that order, as a [len(rows), n_cols] SparseTensor."""
        positions = tf.ragged.range(tf.gather(self.row_starts, rows), tf.gather(self.row_starts, rows + 1))
        flat = positions.flat_values
        indices = tf.stack([positions.value_rowids(), tf.cast(tf.gather(self.cols, flat), tf.int64)], axis=1)
        return tf.SparseTensor(indices, tf.gather(self.values, flat),
                               tf.stack([tf.shape(rows, out_type=tf.int64)[0], tf.constant(self.shape[1], tf.int64)]))


def row_batches(inputs, targets, batch_size, shuffle_seed=None):
    """Batches of (input rows, target rows), in the same order on both paths: SparseRows give tf.SparseTensor
    batches (the fast path: row numbers are shuffled and batched, then read), NumPy arrays dense ones (the dense
    path)."""
    sparse, n_rows = isinstance(inputs, SparseRows), inputs.shape[0]
    dataset = tf.data.Dataset.range(n_rows) if sparse else tf.data.Dataset.from_tensor_slices((inputs, targets))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(n_rows, seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if sparse:
        dataset = dataset.map(lambda rows: (inputs(rows), targets(rows)), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def keras_callbacks(config, session):
    """Stop on NaN, early stopping (counting resumed epochs), the checkpoint, CometML per epoch, the schedule; a
    refit replays the learning rate of each epoch of the run it refits, and stops at its last epoch."""
    checkpoint = session.checkpoint
    log_epoch = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: session.comet.log_metrics(logs, epoch=epoch + 1))
    if config.get("refit_schedule"):
        rates = config["refit_schedule"]["learning_rates"]
        return [keras.callbacks.TerminateOnNaN(), checkpoint, log_epoch,
                keras.callbacks.LearningRateScheduler(lambda epoch: rates[epoch])]
    callbacks = [keras.callbacks.TerminateOnNaN(),
                 ResumableEarlyStopping(checkpoint.history, monitor="val_loss",
                                        min_delta=config["early_stopping_min_delta"],
                                        patience=config["early_stopping_patience"]),
                 checkpoint, log_epoch]
    if config["lr_schedule"] == "step":
        callbacks.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: config["learning_rate"] * 0.5 ** sum(epoch >= step for step in config["lr_step_epochs"])))
    elif config["lr_schedule"] == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2))
    return callbacks


def fit_keras(config, network, prepared, session, strategy=None):
    """Keras' fit with checkpoints, early stopping, the learning-rate schedule and CometML; from the checkpoint
    with --resume. Returns the history of every epoch, resumed ones included (the network ends with the last
    epoch's weights, or the last good checkpoint's when training diverged)."""
    checkpoint = session.checkpoint
    if config["resume"]:
        network.optimizer.build(network.trainable_variables)
        checkpoint.load(network)
    train_data, val_data, steps = training_batches(config, prepared, strategy)
    summary_lines = []
    network.summary(print_fn=lambda line, **kwargs: summary_lines.append(line))
    session.comet.log_model_summary("\n".join(summary_lines))
    refit = config.get("refit_schedule")
    epochs = len(refit["learning_rates"]) if refit else config["epochs"]
    print(f"Training on the {config['training_path']} path ({network.compute_dtype}), "
          f"{'exactly' if refit else 'up to'} {epochs} epochs from epoch {session.initial_epoch + 1}")
    try:
        network.fit(train_data, epochs=epochs, initial_epoch=session.initial_epoch, verbose=2,
                    validation_data=None if refit else val_data, steps_per_epoch=steps,
                    callbacks=keras_callbacks(config, session), shuffle=False)  # row_batches shuffles
    except tf.errors.OpError as error:
        if config["distribute"] == "none":
            raise
        raise distribute.WorkerFailure(
            f"training stopped: a collective operation failed ({type(error).__name__}: {error.message[:300]}); "
            f"another worker most likely died or cannot be reached (collectives wait at most "
            f"{distribute.COLLECTIVE_TIMEOUT_SECONDS} s). The checkpoint of epoch {len(checkpoint.history)} in "
            f"{session.results_dir} is intact: restart every worker with --resume and the same flags.") from None
    if checkpoint.diverged:
        session.report_divergence(len(checkpoint.history) + 1, f"lower the learning rate (--learning-rate "
                                  f"{config['learning_rate']} is most likely too high)", evaluated=True)
        if checkpoint.exists():
            checkpoint.load(network)
    else:
        checkpoint.remove()
    return checkpoint.history, len(checkpoint.history)


# ----------------------------------------------------------------------------------------------------------------
# The kernel networks: full-batch L-BFGS (lbfgs.py).

def build_kernel_model(config, prepared):
    """The kernelised autoencoder (Sparse FC; GLocal-K with --global-kernel-size) for this data, built."""
    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_dtype_policy("float32")
    low, high, _ = prepared.data.scale
    n_rows, n_inputs = prepared.shape
    network = kernel_model.KernelAutoEncoder(n_inputs, n_rows, (low, high),
                                             **{key: config[key] for key in KERNEL_MODEL_KEYS})
    network.build()
    return network


def fit_lbfgs(config, network, prepared, session):
    """Full-batch L-BFGS with validation after every epoch, checkpoints and CometML; from the checkpoint with
    --resume. Returns (the history of every epoch, the first stage's best weights or None when this session
    resumed after it, the kept epoch); the network ends with the best weights of the last stage."""
    stages = [("pre-training" if config["global_kernel_size"] else "training", config["epochs"],
               config["lbfgs_iterations"], False)]
    if config["global_kernel_size"]:
        stages.append(("fine-tuning", config["finetune_epochs"], config["finetune_iterations"], True))
    refit = config.get("refit_schedule")
    if refit:  # each stage for the epochs validation kept in the run refitted; its validation ratings trained on
        stages = [(name, epochs, iterations, global_stage) for (name, _, iterations, global_stage), epochs
                  in zip(stages, refit["stage_epochs"])]
        print("Refit: every stage runs its epochs and keeps the last, with no validation (it trains on those "
              "ratings)")
    try:
        history, first_stage_weights, kept_epoch = lbfgs.train(
            network, prepared.train, None if refit else prepared.val, stages, config["early_stopping_patience"],
            config["early_stopping_min_delta"], session.checkpoint,
            resume=config["resume"], solver=config["lbfgs_solver"], on_epoch=lambda row: session.comet.log_metrics(
                {key: value for key, value in row.items() if key != "stage"}, epoch=row["epoch"]))
    except FloatingPointError:
        session.report_divergence(session.checkpoint.finished_epochs() + 1, "try a larger --lambda-2",
                                  evaluated=False)
        return [], None, None
    session.checkpoint.remove()
    return history, first_stage_weights, kept_epoch


def refit_schedule(config, history, kept_epoch):
    """What a refit of this run replays: the deep network's epochs up to the kept one with each one's learning
    rate; the kernel network's number of epochs of each stage up to the one that stage kept."""
    if config["model"] != "kernel":
        return {"learning_rates": [float(f"{row['learning_rate']:.7g}") for row in history[:kept_epoch]]}
    names = dict.fromkeys(row["stage"] for row in history)
    stages = [[row for row in history if row["stage"] == name] for name in names]
    return {"stage_epochs": [lbfgs.stage_kept_epoch(rows, config["early_stopping_min_delta"]) - rows[0]["epoch"] + 1
                             for rows in stages]}


def first_stage_network(config, network, first_stage_weights, prepared):
    """GLocal-K's pre-trained local autoencoder on its own: the network of --global-kernel-size 0 with the same
    values (the sparsefc preset's) and the first stage's best weights."""
    final_weights = network.get_weights()
    network.set_weights(first_stage_weights)
    local = build_kernel_model({**config, "global_kernel_size": 0}, prepared)
    for source, target in zip(network.hidden + [network.output_layer], local.hidden + [local.output_layer]):
        target.set_weights(source.get_weights())
    network.set_weights(final_weights)
    return local


def evaluate_pre_training(config, network, first_stage_weights, prepared):
    """The first stage's network alone, as the GLocal-K paper's ablation: its test metrics (None without a global
    kernel)."""
    if not config["global_kernel_size"] or first_stage_weights is None:
        return None
    result, _ = inference.evaluate(first_stage_network(config, network, first_stage_weights, prepared), prepared)
    return {key: value for key, value in result.items() if key in reporting.SUMMARY_KEYS}


def save_first_stage_run(config, results_dir, network, first_stage_weights, history, prepared, session):
    """GLocal-K's first stage saved as the sparsefc run it is (the same epochs and weights that --preset sparsefc
    trains): its network evaluated, with its own metrics, predictions, history and model (and the machines of the
    glocalk run's `session`)."""
    results_dir = reporting.prepare_results_dir(results_dir)
    reporting.clear_previous_run(results_dir)
    record = reporting.run_record(config, prepared.data, results_dir)
    local = first_stage_network(config, network, first_stage_weights, prepared)
    stage = [{**row, "stage": "training"} for row in history if row["stage"] == "pre-training"]
    result, predictions = inference.evaluate(local, prepared)
    result = {"diverged": False, **result, "pre_training": None, "trained_as": "the first stage of a glocalk run",
              "machines": session.machines()}
    refit = config.get("refit_schedule")
    kept_epoch = len(stage) if refit else lbfgs.stage_kept_epoch(stage, config["early_stopping_min_delta"])
    result.update(reporting.run_facts(stage, kept_epoch, sum(row["seconds"] for row in stage), 0, prepared.split,
                                      "float32", record))
    result = reporting.without_validation(result) if refit else {
        **result, "refit_schedule": refit_schedule(config, stage, kept_epoch)}
    reporting.save_predictions(results_dir / "predictions.npz", prepared.split, predictions)
    reporting.save_results(results_dir, local, result, stage, prepared.data, config)
    print(f"sparsefc (glocalk's first stage): test RMSE (global) {result['test_rmse']:.4f}, in {results_dir}")
