"""Training infrastructure: checkpoints and early stopping that survive an interrupt, and CometML logging.

Keras callbacks, so this file imports Keras; main.py imports it only once a run starts.
"""

import json
import math
import os
import threading
import time
from pathlib import Path

import keras

from utils import save_json, stop_signals_held, write_atomic

COMET_TIMEOUT_SECONDS = 5  # the longest a CometML call may hold up training before logging turns off


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints and early stopping that survive an interrupt: `python3 main.py --resume` continues from them.

class Checkpoint(keras.callbacks.Callback):
    """After every epoch: model weights with the optimizer state, and the history of finished epochs (Keras'
    logs, learning rate and wall seconds of each), with the configuration of the run that wrote them, so that
    --resume can refuse a different one.

    Ctrl-C and SIGTERM are held back while the two files are written, so they always belong to the same epoch.
    A NaN or infinite metric marks the run as diverged, stops it and keeps the previous (good) checkpoint.
    """

    def __init__(self, results_dir, run_config):
        super().__init__()
        self.weights_path = Path(results_dir) / "checkpoint.weights.h5"
        self.state_path = Path(results_dir) / "checkpoint.json"
        self.run_config = run_config  # what must match for --resume: the model and the data it trains on
        self.history = []  # one dict per finished epoch: epoch, Keras' logs, learning_rate
        self.diverged = False

    def exists(self):
        return self.weights_path.is_file() and self.state_path.is_file()

    def saved_config(self):
        return json.loads(self.state_path.read_text()).get("config", {})

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
        learning_rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)  # also a mirrored variable
        self.history.append({"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()},
                             "learning_rate": float(learning_rate),
                             "seconds": round(time.perf_counter() - self.epoch_started, 3)})
        with stop_signals_held():
            write_atomic(self.weights_path, lambda path: self.model.save_weights(path))
            save_json(self.state_path, {"epoch": len(self.history), "history": self.history,
                                        "config": self.run_config})

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
    folder); otherwise does nothing. Every call runs with a deadline of COMET_TIMEOUT_SECONDS: a key the server
    rejects, or a server out of reach, costs seconds, not the minutes of the client's own retries."""

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

        def create():
            import comet_ml
            if offline:
                return comet_ml.OfflineExperiment(project_name=project_name, offline_directory=str(results_dir),
                                                  **quiet)
            experiment = comet_ml.Experiment(api_key=api_key, project_name=project_name, **quiet)
            if not getattr(experiment, "alive", True):
                raise RuntimeError("the experiment could not be created (invalid key or no network?)")
            return experiment

        try:
            self.experiment = with_deadline(create)
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
            with_deadline(lambda: getattr(self.experiment, method)(*args, **kwargs))
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


def with_deadline(function, seconds=COMET_TIMEOUT_SECONDS):
    """function() in a daemon thread; its result, its exception, or TimeoutError after `seconds` (the thread is
    left behind and cannot keep the program alive)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer from CometML within {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
