"""Re-score a trained model without training: both RMSEs on its recorded split, and its test predictions.

    python3 evaluate.py [--results-dir results/latest]

Reads model.keras, config.json and ids.json from the results folder, rebuilds the split the run recorded (data
set, folder, split, split seed), checks that the data is the one the model was trained on, prints the metrics
(equal to metrics.json's) and writes predictions.tsv: UserID, MovieID, actual and predicted rating (clipped to the
rating scale, as the metrics use it) of every test rating. predictions.tsv holds ratings: never publish it with
MovieLens or Netflix data (their licenses forbid redistribution).
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import data_processor
import main
import metrics
import utils


def load_run(results_dir):
    """The trained model of a results folder, its recorded configuration and its data, split as it was.
    Returns (model, config, prepared)."""
    results_dir = Path(results_dir)
    needed = [results_dir / name for name in ("model.keras", "config.json", "ids.json")]
    missing = [path.name for path in needed if not path.is_file()]
    if missing:
        raise main.ConfigError(f"{results_dir} holds no finished run (missing {', '.join(missing)}). Fix: train "
                               f"one with python3 main.py --results-dir {results_dir}, or point --results-dir at "
                               f"the folder of a finished run.")
    config = json.loads((results_dir / "config.json").read_text())
    prepared = data_processor.prepare_data(config["dataset"], config["data_dir"], config["split"],
                                           config["split_seed"], config["orientation"], config["time_window"])
    data = prepared["data"]
    ids = json.loads((results_dir / "ids.json").read_text())
    if data["files"] != config["data_files"] or ids["user_ids"] != data["user_ids"].tolist() \
            or ids["item_ids"] != data["item_ids"].tolist():
        raise data_processor.DataError(
            f"the data in {data['data_dir']} is not the data the model in {results_dir} was trained on (file "
            f"checksums or ids differ: recorded {config['data_files']}, found {data['files']}). Fix: restore that "
            f"data, or train a new model on this one.")
    import keras

    import kernel_model  # registers KernelAutoEncoder with Keras
    import model  # registers DeepAutoEncoder with Keras

    network = keras.models.load_model(results_dir / "model.keras")
    return network, config, prepared


def main_evaluate(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", type=Path, default=main.RESULTS_DIR)
    args = parser.parse_args(argv)
    try:
        network, config, prepared = load_run(args.results_dir)
    except (main.ConfigError, data_processor.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    orientation, data = config["orientation"], prepared["data"]
    result = main.evaluate(network, prepared, orientation)
    print(f"Test masked RMSE (seed metric, per-user): {result['test_masked_rmse']:.4f}")
    print(f"Test RMSE (global, literature metric):     {result['test_rmse']:.4f}")
    print(f"Validation RMSE (global):                  {result['val_rmse']:.4f}")
    if result["test_ndcg_at_10"] is not None:
        print(f"Test NDCG@10 / Recall@10:                  {result['test_ndcg_at_10']:.4f} / "
              f"{result['test_recall_at_10']:.4f}")

    test = prepared["split"]["test"]
    users, items, ratings = data["users"][test], data["items"][test], data["ratings"][test]
    rows, cols = (users, items) if orientation == "user" else (items, users)
    predicted = np.clip(metrics.predict_at(network, network.input_matrix(prepared["train"]), rows, cols),
                        *data["scale"][:2])
    lines = ["UserID\tMovieID\tactual\tpredicted"] + [
        f"{user}\t{item}\t{actual:g}\t{guess:.4f}"
        for user, item, actual, guess in zip(data["user_ids"][users], data["item_ids"][items], ratings, predicted)]
    path = args.results_dir / "predictions.tsv"
    utils.write_atomic(path, lambda temporary: Path(temporary).write_text("\n".join(lines) + "\n"))
    print(f"Wrote {len(test):,} test predictions to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main_evaluate())
