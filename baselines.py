"""The simple baselines (baseline_models.py) on a split, as a table.

    python3 baselines.py [--dataset ml-1m] [--data-dir PATH] [--split stratified] [--split-seed N] [--repeats N]
                         [--ratings-file FILE ...]  # --dataset csv: your own file, with main.py's csv flags
                         [--results-dir DIR]   # keeps each baseline's predictions for blend.py
                         [--ordered-probit]    # also bfm-probit
                         [--refit]             # also each fitted on train + validation (DIR/<baseline>/refit)
                         [--only NAME ...]     # just these: global-mean, user-item-bias, item-knn, bmf, bfm, bfm-probit
"""

import argparse
import sys
from pathlib import Path

import utils  # noqa: F401  first of the project's modules: it refuses a Python older than 3.11, clearly
import baseline_models
import data_processor
from comparison import split_of_repeat
import config
from config import ConfigError


def parse_arguments(argv):
    """The flags, checked, and the names of the baselines they choose."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(data_processor.DATASETS), default="ml-1m")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--split", choices=data_processor.SPLITS + list(data_processor.SPLIT_ALIASES),
                        default="stratified")
    parser.add_argument("--time-window", choices=list(data_processor.TIME_WINDOWS), default="full")
    parser.add_argument("--split-seed", type=int, default=data_processor.SPLIT_SEED)
    parser.add_argument("--repeats", type=int, default=1, help="successive splits, as main.py's --repeats")
    parser.add_argument("--ordered-probit", action="store_true",
                        help="also bfm as an ordered probit model of the star levels (bfm-probit; slower)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        choices=[baseline_models.baseline_folder(name) for name in baseline_models.BASELINES],
                        help="fit just these baselines, e.g. --only bfm-probit to add it to kept ones")
    parser.add_argument("--refit", action="store_true",
                        help="also fit each on train + validation (the refit protocol; the bias model with the "
                             "strength validation chose), scored on the test ratings")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="keep each baseline's predictions in DIR/<baseline>[/run-<i>], for blend.py")
    for flag, default in config.CSV_FLAGS.items():  # your own file, as main.py reads it
        parser.add_argument(flag, default=default, type=config.parse_scale if flag == "--rating-scale" else str,
                            help="--dataset csv: as main.py's")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats} is invalid: a positive integer")
    if args.only:
        names = [name for name in baseline_models.BASELINES if baseline_models.baseline_folder(name) in args.only]
    else:
        names = baseline_models.BASELINES if args.ordered_probit else baseline_models.DEFAULT_BASELINES
    return args, names


def main(argv=None):
    args, names = parse_arguments(argv)
    try:
        settings = {**vars(args), "split": data_processor.SPLIT_ALIASES.get(args.split, args.split),
                    "separator": {"\\t": "\t", "tab": "\t"}.get(args.separator, args.separator)}
        for key in ("ratings_file", "titles_file"):
            settings[key] = settings[key] and str(Path(settings[key]).expanduser().resolve())
        config.validate_csv(settings)
        data = data_processor.load_run_data(settings)
        for index in range(args.repeats):
            flags = split_of_repeat({"split": args.split, "split_seed": args.split_seed}, index)
            split = data_processor.split_ratings(data, flags["split"], flags["split_seed"], args.time_window)
            print(f"\nSplit {flags['split']} (split seed {flags['split_seed']}):")
            subfolder = f"run-{index + 1}" if args.repeats > 1 else ""
            results = baseline_models.evaluate_baselines(data, split, args.results_dir, subfolder, names)
            if args.refit:
                results += baseline_models.evaluate_baselines(data, split, args.results_dir, Path(subfolder) / "refit",
                                                              names, refit_of={row["name"]: row for row in results})
            print_table(results)
    except (ConfigError, data_processor.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def print_table(results):
    print("| baseline | test masked RMSE (per-user) | test RMSE (global) | val RMSE (global) | test NDCG@10 |")
    print("|---|---|---|---|---|")
    for result in results:
        chosen = [f"reg {result['reg']:g}"] if "reg" in result else []
        chosen += [f"{result['neighbours']} neighbours"] if "neighbours" in result else []
        name = result["name"] + (f" ({', '.join(chosen)})" if chosen else "") + (
            ", refit on train + validation" if result.get("refit") else "")
        ndcg = "" if result["test_ndcg_at_10"] is None else f"{result['test_ndcg_at_10']:.4f}"
        val = "" if result["val_rmse"] is None else f"{result['val_rmse']:.4f}"
        print(f"| {name} | {result['test_masked_rmse']:.4f} | {result['test_rmse']:.4f} | {val} | {ndcg} |")


if __name__ == "__main__":
    sys.exit(main())
