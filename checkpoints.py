"""Checkpoints that survive an interrupt, for both trainers: `python3 main.py --resume` continues from them.

A checkpoint is checkpoint.json (the history of the finished epochs, the trainer's state and the configuration
of the run that wrote it, so that --resume can refuse another one) and weight files, all written while Ctrl-C
and SIGTERM wait, so that they always belong to the same epoch.
"""

import json
import math
import time
from pathlib import Path

import keras

from kernel_model import KERNEL_MODEL_KEYS
from model import MODEL_KEYS
from utils import ConfigError, save_json, stop_signals_held, write_atomic

# What a --resume must share with the interrupted run: the model, its optimizer and the ratings it trains on.
RESUME_KEYS = ["dataset", "split", "split_seed", "time_window", "orientation", "model", "optimizer", *MODEL_KEYS,
               *[key for key in KERNEL_MODEL_KEYS if key not in MODEL_KEYS], "lbfgs_iterations",
               "finetune_iterations", "ratings_fingerprint"]


class CheckpointFiles:
    """The files of a checkpoint in a results folder; `run_config` is what --resume must match."""

    def __init__(self, results_dir, run_config, weight_names):
        self.results_dir = Path(results_dir)
        self.state_path = self.results_dir / "checkpoint.json"
        self.weight_paths = {name: self.results_dir / f"{name}.weights.h5" for name in weight_names}
        self.run_config = run_config

    def exists(self):
        return self.state_path.is_file() and all(path.is_file() for path in self.weight_paths.values())

    def state(self):
        try:
            return json.loads(self.state_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"--resume: {self.state_path} is damaged ({error}). Fix: run without --resume "
                              f"(which starts afresh in that folder) or with another --results-dir.") from None

    def finished_epochs(self):
        return len(self.state()["history"]) if self.exists() else 0

    def check_resumable(self):
        """Refuse to resume without a checkpoint, or from one of another model or data configuration."""
        if not self.exists():
            raise ConfigError(f"--resume: no checkpoint in {self.results_dir}. Fix: run without --resume, or point "
                              f"--results-dir at the folder of the interrupted run.")
        saved = self.state().get("config", {})
        if "ratings_fingerprint" not in saved:  # a checkpoint recorded before the fingerprint: its files' checksums
            saved = {**saved, "ratings_fingerprint": self.run_config["ratings_fingerprint"]
                     if saved.get("data_files") == self.run_config.get("data_files") else None}
        differing = [key for key in RESUME_KEYS if saved.get(key) != self.run_config[key]]
        if differing:
            details = "; ".join(f"{'the ratings' if key == 'ratings_fingerprint' else '--' + key.replace('_', '-')} "
                                f"was {saved.get(key)!r}, now {self.run_config[key]!r}" for key in differing)
            raise ConfigError(f"--resume: the checkpoint in {self.results_dir} belongs to a run with other settings "
                              f"({details}). Fix: resume with the interrupted run's flags, or run without --resume "
                              f"(which starts afresh in that folder) or with another --results-dir.")

    def write(self, writers, state):
        """writers: {weight file name: a function that writes it to the path it is given}; then checkpoint.json."""
        with stop_signals_held():
            for name, write in writers.items():
                write_atomic(self.weight_paths[name], write)
            save_json(self.state_path, {**state, "config": self.run_config})

    def load_weights(self, model, name):
        try:
            model.load_weights(self.weight_paths[name])
        except (OSError, ValueError) as error:
            raise ConfigError(f"--resume: {self.weight_paths[name]} is damaged ({type(error).__name__}: "
                              f"{str(error)[:200]}). Fix: run without --resume (which starts afresh in that "
                              f"folder).") from None

    def remove(self):
        for path in [self.state_path, *self.weight_paths.values()]:
            path.unlink(missing_ok=True)


def save_other_weights(model, values, path):
    """Save `values` (a get_weights() list) as the model's weights, and give the model its own back."""
    current = model.get_weights()
    model.set_weights(values)
    model.save_weights(path)
    model.set_weights(current)


class KerasCheckpoint(CheckpointFiles, keras.callbacks.Callback):
    """After an epoch of Keras' fit, the first and then at most every `every_seconds`: the weights with the
    optimizer state, and the history of finished epochs (Keras' logs, learning rate and wall seconds of each).
    Writing the weights takes about 0.1 s, a tenth of a short epoch, and matters only after an interrupt. A NaN or
    infinite metric marks the run as diverged, stops it and keeps the last (good) checkpoint."""

    def __init__(self, results_dir, run_config, every_seconds=0):
        CheckpointFiles.__init__(self, results_dir, run_config, ["checkpoint"])
        keras.callbacks.Callback.__init__(self)
        self.history = []  # one dict per finished epoch: epoch, Keras' logs, learning_rate, seconds
        self.diverged = False
        self.every_seconds, self.written_at = every_seconds, None

    def load(self, model):
        """Restore weights and optimizer state into `model`, and the history of the finished epochs."""
        self.load_weights(model, "checkpoint")
        self.history[:] = self.state()["history"]

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if not all(math.isfinite(float(value)) for value in logs.values()):
            self.diverged = True
            self.model.stop_training = True
            return
        learning_rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)  # also a mirrored variable
        self.history.append({"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()},
                             "learning_rate": float(learning_rate),
                             "seconds": round(time.perf_counter() - self.epoch_started, 3)})
        if self.written_at is None or time.perf_counter() - self.written_at >= self.every_seconds:
            self.write({"checkpoint": self.model.save_weights}, {"epoch": len(self.history), "history": self.history})
            self.written_at = time.perf_counter()


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


class LbfgsCheckpoint(CheckpointFiles):
    """After every L-BFGS epoch: the current and the best weights and the trainer's state (lbfgs.train); from the
    second stage on, also the first stage's best weights (GLocal-K's pre-trained network, the sparsefc member of
    --compare)."""

    def __init__(self, results_dir, run_config):
        super().__init__(results_dir, run_config, ["checkpoint", "checkpoint-best"])
        self.first_stage_path = self.results_dir / "checkpoint-first-stage.weights.h5"

    def save(self, model, best_weights, state, first_stage_weights=None):
        writers = {"checkpoint": model.save_weights,
                   "checkpoint-best": lambda path: save_other_weights(model, best_weights, path)}
        if first_stage_weights is not None and not self.first_stage_path.is_file():
            self.weight_paths["checkpoint-first-stage"] = self.first_stage_path
            writers["checkpoint-first-stage"] = lambda path: save_other_weights(model, first_stage_weights, path)
        self.write(writers, state)

    def load(self, model):
        """The saved state; the model holds the current weights. Returns (state, best weights, the first stage's
        best weights or None)."""
        self.load_weights(model, "checkpoint-best")
        best_weights, first_stage_weights = model.get_weights(), None
        if self.first_stage_path.is_file():
            self.weight_paths["checkpoint-first-stage"] = self.first_stage_path
            self.load_weights(model, "checkpoint-first-stage")
            first_stage_weights = model.get_weights()
        self.load_weights(model, "checkpoint")
        return self.state(), best_weights, first_stage_weights

    def remove(self):
        super().remove()
        self.first_stage_path.unlink(missing_ok=True)
