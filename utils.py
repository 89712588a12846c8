"""Masked losses and metrics, prediction of known positions, plots, atomic saving, CometML logging."""

import csv
import json
import math
import os
import resource
import signal
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

RATING_MIN, RATING_MAX = 1.0, 5.0
UMASK = os.umask(0o022)
os.umask(UMASK)


# ----------------------------------------------------------------------------------------------------------------
# Losses (TensorFlow, used in training). A rating of 0 means unknown.

def row_squared_errors(y_true, y_pred, clip=False):
    """Per row: the sum of squared errors over the row's known ratings, and their count.

    y_true is dense (0 = unknown) or a tf.SparseTensor in canonical (row-major) order. For the latter, y_pred is
    either dense (read only at the known positions) or already the vector of predictions at y_true.indices
    (DeepAutoEncoder.call_at).
    With clip=True, predictions are clipped to [1, 5] first.
    """
    y_pred = tf.cast(y_pred, tf.float32)
    if isinstance(y_true, tf.SparseTensor):
        predicted = y_pred if y_pred.shape.rank == 1 else tf.gather_nd(y_pred, y_true.indices)
        if clip:
            predicted = tf.clip_by_value(predicted, RATING_MIN, RATING_MAX)
        # A SparseTensor in canonical order (tf.sparse.reorder; tf.data batches keep it) lists its rows in
        # non-decreasing order, so the sorted segment sum applies: twice as fast as the unsorted one on CPU.
        # Trailing rows without ratings get no entry, which changes neither loss.
        rows = y_true.indices[:, 0]
        squared_error = tf.math.segment_sum(tf.square(y_true.values - predicted), rows)
        return squared_error, tf.math.segment_sum(tf.ones_like(y_true.values), rows)
    if clip:
        y_pred = tf.clip_by_value(y_pred, RATING_MIN, RATING_MAX)
    mask = tf.cast(tf.not_equal(y_true, 0), tf.float32)
    squared_error = tf.reduce_sum(mask * tf.square(tf.cast(y_true, tf.float32) - y_pred), axis=-1)
    return squared_error, tf.reduce_sum(mask, axis=-1)


def masked_rmse(y_true, y_pred, clip=False):
    """The seed's loss: per row, RMSE over that row's known ratings; averaged over the rows that have any.
    With clip=True it is the seed's reported metric, masked_rmse_clip."""
    return _mean_row_rmse(*row_squared_errors(y_true, y_pred, clip))


def masked_mse(y_true, y_pred, clip=False):
    """The paper's loss (MMSE): mean squared error over all known ratings of the batch."""
    squared_error, count = row_squared_errors(y_true, y_pred, clip)
    return tf.reduce_sum(squared_error) / tf.maximum(tf.reduce_sum(count), 1.0)


LOSSES = {"masked_rmse": masked_rmse, "masked_mse": masked_mse}


def _mean_row_rmse(squared_error, count):
    has_ratings = count > 0
    # tf.where keeps rows without ratings out of both the value and the gradient (sqrt'(0) is infinite).
    row_mse = tf.where(has_ratings, squared_error / tf.maximum(count, 1.0), tf.ones_like(count))
    row_rmse = tf.where(has_ratings, tf.sqrt(row_mse), tf.zeros_like(count))
    return tf.reduce_sum(row_rmse) / tf.maximum(tf.reduce_sum(tf.cast(has_ratings, tf.float32)), 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Metrics (NumPy, on (user, item, rating) triples: the same numbers whichever way the matrix is oriented).

def per_user_masked_rmse(users, ratings, predictions):
    """The seed's metric: per user, RMSE over that user's ratings with predictions clipped to [1, 5], then the
    mean over users (users with no rating in this part are left out)."""
    squared_error = np.square(np.clip(predictions, RATING_MIN, RATING_MAX) - ratings).astype(np.float64)
    sums = np.bincount(users, weights=squared_error)
    counts = np.bincount(users)
    has = counts > 0
    return float(np.mean(np.sqrt(sums[has] / counts[has])))


def global_rmse(ratings, predictions):
    """The literature's metric: RMSE over all ratings, predictions clipped to [1, 5]."""
    squared_error = np.square(np.clip(predictions, RATING_MIN, RATING_MAX) - ratings).astype(np.float64)
    return float(np.sqrt(np.mean(squared_error)))


def predict_at(model, inputs, rows, cols, batch_size=1024):
    """Predictions of `model` at (rows[k], cols[k]), each row predicted from its row of the sparse `inputs`.

    Only the rows that are asked for are run through the network, one batch at a time.
    """
    predictions = np.empty(len(rows), dtype=np.float32)
    wanted_rows = np.unique(rows)
    for first in range(0, len(wanted_rows), batch_size):
        batch_rows = wanted_rows[first:first + batch_size]
        outputs = predict_rows(model, inputs, batch_rows)
        selected = np.flatnonzero((rows >= batch_rows[0]) & (rows <= batch_rows[-1]))
        predictions[selected] = outputs[np.searchsorted(batch_rows, rows[selected]), cols[selected]]
    return predictions


def predict_rows(model, inputs, rows):
    """Dense outputs of `model` for the given rows of a sparse input matrix."""
    batch = inputs[rows].toarray() if hasattr(inputs, "toarray") else inputs[rows]
    return np.asarray(model(batch, training=False), dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Saving: every file is written to a temporary name in the same folder, then renamed over the target, so an
# interrupted write leaves either the old file or the new one, never a broken one.

def atomic_path(path):
    """A temporary path next to `path`; the caller writes it and then calls os.replace(temporary, path)."""
    path = Path(path)
    suffix = "".join(path.suffixes)  # Keras wants '.keras' and '.weights.h5' endings
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:-len(suffix) or None]}-",
                                         suffix=suffix)
    os.close(handle)
    return Path(temporary)


def write_atomic(path, write):
    """Call write(temporary_path), then move the result over `path`."""
    temporary = atomic_path(path)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp creates files readable by their owner only
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_json(path, data):
    write_atomic(path, lambda p: Path(p).write_text(json.dumps(data, indent=2, default=_json_default) + "\n"))


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_history_csv(path, history):
    """history: list of per-epoch dicts (epoch plus Keras' logs)."""
    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[0].keys()))
            writer.writeheader()
            writer.writerows(history)
    write_atomic(path, write)


def plot_curves(path, history, metric, title, ylabel):
    """Train vs validation curve of one metric, as the seed's figures."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(epochs, [row[metric] for row in history], label="train")
    axes.plot(epochs, [row[f"val_{metric}"] for row in history], label="validation")
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    write_atomic(path, lambda p: figure.savefig(p, dpi=110, format="png"))
    plt.close(figure)


def peak_memory_mb():
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_comparison(results_dir, rows):
    """comparison.csv, comparison.md (a markdown table) and comparison.png (both test metrics per model)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results_dir = Path(results_dir)
    save_history_csv(results_dir / "comparison.csv", rows)
    lines = ["| model | test masked RMSE (seed, per-user) | test RMSE (global) | val RMSE (global) | epochs | "
             "train seconds |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['test_masked_rmse']:.4f} | {row['test_rmse']:.4f} | "
                     f"{row['val_rmse']:.4f} | {row['epochs']} | {row['train_seconds']} |")
    write_atomic(results_dir / "comparison.md", lambda path: Path(path).write_text("\n".join(lines) + "\n"))

    figure, axes = plt.subplots(figsize=(8, 4.5))
    positions = np.arange(len(rows))
    for offset, key, label in [(-0.2, "test_masked_rmse", "masked RMSE (seed, per-user)"),
                               (0.2, "test_rmse", "RMSE (global)")]:
        bars = axes.bar(positions + offset, [row[key] for row in rows], width=0.4, label=label)
        axes.bar_label(bars, fmt="%.3f", fontsize=7)
    axes.set_xticks(positions, [row["name"] for row in rows], rotation=15)
    axes.set_ylim(0.7, max(max(row["test_rmse"], row["test_masked_rmse"]) for row in rows) + 0.05)
    axes.set_ylabel("test error (lower is better)")
    axes.legend()
    figure.tight_layout()
    write_atomic(results_dir / "comparison.png", lambda path: figure.savefig(path, dpi=110, format="png"))
    plt.close(figure)


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints and early stopping that survive an interrupt: `python3 main.py --resume` continues from them.

class Checkpoint(keras.callbacks.Callback):
    """After every epoch: model weights with the optimizer state, and the history of finished epochs (Keras'
    logs, learning rate and wall seconds of each).

    Ctrl-C and SIGTERM are held back while the two files are written, so they always belong to the same epoch.
    A NaN or infinite metric marks the run as diverged, stops it and keeps the previous (good) checkpoint.
    """

    def __init__(self, results_dir):
        super().__init__()
        self.weights_path = Path(results_dir) / "checkpoint.weights.h5"
        self.state_path = Path(results_dir) / "checkpoint.json"
        self.history = []  # one dict per finished epoch: epoch, Keras' logs, learning_rate
        self.diverged = False

    def exists(self):
        return self.weights_path.is_file() and self.state_path.is_file()

    def load(self, model):
        """Restore weights and optimizer state into `model`, and the history of the finished epochs."""
        model.load_weights(self.weights_path)
        self.history[:] = json.loads(self.state_path.read_text())["history"]

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if not all(math.isfinite(float(value)) for value in logs.values()):
            self.diverged = True
            self.model.stop_training = True
            return
        self.history.append({"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()},
                             "learning_rate": float(self.model.optimizer.learning_rate),
                             "seconds": round(time.perf_counter() - self.epoch_started, 3)})
        signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            write_atomic(self.weights_path, lambda path: self.model.save_weights(path))
            save_json(self.state_path, {"epoch": len(self.history), "history": self.history})
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)

    def remove(self):
        self.weights_path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping, whose patience counter also counts the epochs finished before a --resume:
    it replays their logs when training begins."""

    def __init__(self, history, **kwargs):
        super().__init__(**kwargs)
        self.finished_epochs = history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for row in list(self.finished_epochs):
            super().on_epoch_end(row["epoch"] - 1, row)


# ----------------------------------------------------------------------------------------------------------------
# CometML: optional. Any failure warns once and turns logging off; the run and its local files go on.

class CometLogger:
    """Logs to CometML when COMET_API_KEY is set (online) or COMET_MODE=offline (an archive in the results
    folder); otherwise does nothing."""

    def __init__(self, project_name, results_dir):
        self.experiment = None
        api_key = os.environ.get("COMET_API_KEY")
        offline = os.environ.get("COMET_MODE", "").lower() == "offline"
        if not api_key and not offline:
            print("CometML logging is off (set COMET_API_KEY to log online, or COMET_MODE=offline).")
            return
        quiet = dict(auto_param_logging=False, auto_metric_logging=False, auto_output_logging=False,
                     parse_args=False, log_code=False, log_graph=False, log_git_metadata=False,
                     log_git_patch=False, log_env_details=False, display_summary_level=0)
        try:
            import comet_ml
            if offline:
                self.experiment = comet_ml.OfflineExperiment(project_name=project_name,
                                                             offline_directory=str(results_dir), **quiet)
            else:
                self.experiment = comet_ml.Experiment(api_key=api_key, project_name=project_name, **quiet)
            if not getattr(self.experiment, "alive", True):
                raise RuntimeError("the experiment could not be created (invalid key or no network?)")
            print(f"CometML logging is on ({'offline, archive in ' + str(results_dir) if offline else 'online'}).")
        except Exception as error:
            self._give_up(error)

    def _give_up(self, error):
        print(f"Warning: CometML logging failed and is now off ({type(error).__name__}: {error}). "
              f"The run goes on; all results are still written locally.")
        self.experiment = None

    def _call(self, method, *args, **kwargs):
        if self.experiment is None:
            return
        try:
            getattr(self.experiment, method)(*args, **kwargs)
        except Exception as error:
            self._give_up(error)

    def log_parameters(self, parameters):
        self._call("log_parameters", parameters)

    def log_metrics(self, metrics, epoch=None):
        self._call("log_metrics", metrics, epoch=epoch)

    def log_figure(self, path):
        self._call("log_image", str(path), name=Path(path).stem)

    def log_model_summary(self, text):
        self._call("set_model_graph", text)

    def end(self):
        self._call("end")
