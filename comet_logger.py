"""CometML logging, optional: with COMET_API_KEY (online) or COMET_MODE=offline (an archive in the results folder).
Any failure warns once and turns logging off; the run and its local files go on.

comet_ml is imported only when logging is on, by main.py before TensorFlow (as comet_ml asks).
"""

import os
import threading
from pathlib import Path

COMET_TIMEOUT_SECONDS = 5  # the longest a CometML call may hold up training before logging turns off
if os.environ.get("COMET_API_KEY") or os.environ.get("COMET_MODE", "").lower() == "offline":
    import comet_ml  # noqa: F401  before TensorFlow, as comet_ml asks: main.py imports this file first


class CometLogger:
    """Logs to CometML when COMET_API_KEY is set (online) or COMET_MODE=offline (an archive in the results
    folder); otherwise does nothing. Every call runs with a deadline of COMET_TIMEOUT_SECONDS: a key the server
    rejects, or a server out of reach, costs seconds, not the minutes of the client's own retries."""

    def __init__(self, project_name, results_dir, tags=(), enabled=True):
        """enabled=False: a logger that does nothing (the workers other than the chief of a cluster)."""
        self.experiment = None
        api_key = os.environ.get("COMET_API_KEY")
        offline = os.environ.get("COMET_MODE", "").lower() == "offline"
        if not (api_key or offline) or not enabled:
            if enabled:
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
        self._call("add_tags", list(tags))

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

    def log_result(self, result, figures):
        """The run's final metrics (validation and test, both RMSEs, NDCG@10, Recall@10) and its figures."""
        self.log_metrics({key: value for key, value in result.items()
                          if key.startswith(("val_", "test_")) and value is not None})
        for path in figures:
            self.log_figure(path)

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
