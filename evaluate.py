"""Re-score a trained model without training: both RMSEs on its recorded split, and its test predictions.

    python3 evaluate.py [--results-dir results/latest]

Reads the finished run in the results folder (model.keras, config.json, ids.json, metrics.json), rebuilds the split
it recorded (data set, folder, split, split seed), checks that the data is the one the model was trained on, prints
the metrics (equal to metrics.json's: the same precision, the same predictions) and writes predictions.tsv: UserID,
MovieID, actual and predicted rating (clipped to the rating scale, as the metrics use it) of every test rating.
predictions.tsv holds ratings: never publish it with MovieLens or Netflix data (their licenses forbid
redistribution).
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import utils  # noqa: F401  first of the project's modules: it refuses a Python older than 3.11, clearly
import data_processor
import reporting
from config import ConfigError

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", type=Path, default=reporting.DEFAULT_RESULTS_DIR)
    reporting.add_moved_data_flags(parser)
    args = parser.parse_args(argv)
    import inference  # TensorFlow is imported once the arguments are read: --help answers at once

    try:
        network, config, prepared = inference.load_run(args.results_dir, reporting.moved_data(args))
    except (ConfigError, data_processor.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result, predictions = inference.evaluate(network, prepared)
    if config.get("refit_schedule"):  # a refit trained on its validation ratings: as its metrics.json, none there
        result = reporting.without_validation(result)
    reporting.print_metrics(result)
    path = args.results_dir / "predictions.tsv"
    inference.write_test_predictions(path, prepared, predictions)
    print(f"Wrote {len(prepared.split.test):,} test predictions to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
