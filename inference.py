"""Using a trained model: evaluate it, keep its predictions, and load a finished run from its results folder.
main.py, evaluate.py and recommend.py all go through here.

Every prediction is made from the train matrix (GLocal-K: from the train matrix convolved with its global kernel),
in the precision the run trained in, so that a reloaded model prints exactly the run's metrics.json.
"""

import json
from pathlib import Path

import keras
import numpy as np

import data_processor
import kernel_model  # noqa: F401  registers KernelAutoEncoder with Keras, for load_model
import metrics
import model  # noqa: F401  registers DeepAutoEncoder with Keras, for load_model
import reporting
import utils
from utils import ConfigError


def predict_parts(network, inputs, prepared):
    """The network's predictions (unclipped) from its input matrix at the validation and test ratings, aligned
    with split.val and split.test."""
    def predict(users, items):
        rows, cols = (users, items) if prepared.orientation == "user" else (items, users)
        return metrics.predict_at(network, inputs, rows, cols)

    return metrics.predict_parts(prepared.data, prepared.split, predict)


def evaluate(network, prepared):
    """Both RMSEs on validation and test, NDCG@10 and Recall@10 on test. Returns (metrics, predictions)."""
    data, inputs = prepared.data, network.input_matrix(prepared.train)
    predictions = predict_parts(network, inputs, prepared)
    scorer = metrics.user_scorer(network, inputs, prepared.orientation, data.n_users, data.n_items)
    return metrics.evaluate_predictions(data, prepared.split, predictions, scorer), predictions


def write_test_predictions(path, prepared, predictions):
    """predictions.tsv: UserID, MovieID, actual and predicted rating (clipped to the scale, as the metrics use it)
    of every test rating."""
    data, test = prepared.data, prepared.split.test
    predicted = np.clip(predictions["test"], *data.scale[:2])
    lines = ["UserID\tMovieID\tactual\tpredicted"] + [
        f"{user}\t{item}\t{actual:g}\t{guess:.4f}" for user, item, actual, guess in
        zip(data.user_ids[data.users[test]], data.item_ids[data.items[test]], data.ratings[test], predicted)]
    utils.write_atomic(path, lambda temporary: Path(temporary).write_text("\n".join(lines) + "\n"))


def read_run_file(results_dir, name):
    """A JSON file of a finished run, or a ConfigError that names the damaged file and the fix."""
    path = Path(results_dir) / name
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is damaged ({error}). Fix: train the run again with python3 main.py "
                          f"--results-dir {results_dir} (and its flags, listed in config.json if that is intact).") \
            from None


def load_run(results_dir, moved_data=None):
    """The trained network of a results folder, its recorded configuration and its data, split as it was.
    `moved_data` ({'data_dir' or 'ratings_file', 'titles_file': path}) says where the data is now, when it moved
    since training; the ratings must be the same. Returns (network, config, prepared)."""
    results_dir = Path(results_dir)
    missing = [name for name in ("model.keras", "config.json", "ids.json", "metrics.json")
               if not (results_dir / name).is_file()]
    if missing:
        raise ConfigError(f"{results_dir} holds no finished run (missing {', '.join(missing)}). Fix: train one "
                          f"with python3 main.py --results-dir {results_dir}, or point --results-dir at the folder "
                          f"of a finished run.")
    config, ids = read_run_file(results_dir, "config.json"), read_run_file(results_dir, "ids.json")
    precision = read_run_file(results_dir, "metrics.json").get("precision", "float32")
    config = reporting.with_moved_data(config, moved_data or {})
    prepared = data_processor.prepare_run_data(config)
    data_processor.check_recorded(prepared.data, config, f"the model in {results_dir}", ids)
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        network = keras.models.load_model(results_dir / "model.keras")
    except Exception as error:  # a truncated or foreign file: zipfile, h5py and Keras each raise their own
        raise ConfigError(f"{results_dir / 'model.keras'} is damaged ({type(error).__name__}: {str(error)[:200]}). "
                          f"Fix: train the run again with python3 main.py --results-dir {results_dir}.") from None
    return network, config, prepared
