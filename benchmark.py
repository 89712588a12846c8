"""Speed of the fast (sparse) path against the plain dense Keras path, measured in one run on the same data.

    python3 benchmark.py [--epochs 5] [--data-dir PATH] [--full]

Prints one JSON line: data-preparation seconds (cold and warm), seconds per epoch of each path (median of the
epochs after the first, which includes tracing), peak memory, test metrics after the same number of epochs from
the same seed, and the ratios dense/fast. --full also times a complete default run (`python3 main.py`).
Peak memory is the process's peak so far: the fast paths run first, so their figures are their own.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import data_processor
import main
import utils


def prepare_data(data_dir):
    """Parse + validate + split + the two matrices training uses; returns seconds."""
    started = time.perf_counter()
    data = data_processor.load_movielens(data_dir)
    split = data_processor.split_ratings(data)
    shape = data_processor.matrix_shape(data)
    for part in ("train", "val"):
        data_processor.sparse_rating_matrix(*data_processor.triples(data, split[part]), shape)
    return time.perf_counter() - started


def time_path(name, flags, epochs, data_dir, scratch):
    config = main.parse_config(["--epochs", str(epochs), "--patience", str(epochs + 1), "--data-dir", str(data_dir),
                                "--results-dir", str(Path(scratch) / name), *flags])
    status, metrics = main.run(config)
    if status != 0:
        raise SystemExit(f"benchmark: the {name} run failed (exit status {status})")
    with open(Path(scratch) / name / "history.csv") as handle:
        seconds = [float(line.split(",")[-1]) for line in handle.readlines()[1:]]
    return {"seconds_per_epoch": round(statistics.median(seconds[1:] or seconds), 3),
            "first_epoch_seconds": round(seconds[0], 3), "peak_memory_mb": round(utils.peak_memory_mb(), 1),
            "test_masked_rmse": round(metrics["test_masked_rmse"], 4), "test_rmse": round(metrics["test_rmse"], 4)}


def main_benchmark(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per path (at least 2)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--full", action="store_true", help="also time a complete default run of main.py")
    args = parser.parse_args(argv)
    data_dir = data_processor.ensure_movielens(data_processor.resolve_data_dir(args.data_dir))

    result = {"machine": f"{os.cpu_count()} CPU cores", "epochs": args.epochs,
              "data_prep_seconds_cold": round(prepare_data(data_dir), 3),
              "data_prep_seconds_warm": round(prepare_data(data_dir), 3)}
    with tempfile.TemporaryDirectory() as scratch:
        paths = {"fast": ["--training-path", "sparse"],
                 "fast_bfloat16": ["--training-path", "sparse", "--precision", "bfloat16"],
                 "dense": ["--training-path", "dense"]}
        for name, flags in paths.items():
            result[name] = time_path(name, flags, args.epochs, data_dir, scratch)
    for name in ("fast", "fast_bfloat16"):
        result[f"speedup_{name}_vs_dense"] = round(
            result["dense"]["seconds_per_epoch"] / result[name]["seconds_per_epoch"], 2)
        result[f"test_rmse_difference_{name}_vs_dense"] = round(
            abs(result[name]["test_rmse"] - result["dense"]["test_rmse"]), 4)
    if args.full:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            subprocess.run([sys.executable, str(Path(__file__).with_name("main.py")), "--data-dir", str(data_dir),
                            "--results-dir", scratch], check=True, stdout=subprocess.DEVNULL)
            result["full_default_run_seconds"] = round(time.perf_counter() - started, 1)
            result["full_default_run_metrics"] = json.loads((Path(scratch) / "metrics.json").read_text())
            del result["full_default_run_metrics"]["config"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main_benchmark())
