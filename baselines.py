"""The simple baselines (baseline_models.py) on a split, as a table.

    python3 baselines.py [--dataset ml-1m] [--data-dir PATH] [--split stratified] [--split-seed N]
"""

import argparse
import sys

import baseline_models
import data_processor


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(data_processor.DATASETS), default="ml-1m")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--split", choices=data_processor.SPLITS + list(data_processor.SPLIT_ALIASES),
                        default="stratified")
    parser.add_argument("--time-window", choices=list(data_processor.TIME_WINDOWS), default="full")
    parser.add_argument("--split-seed", type=int, default=data_processor.SPLIT_SEED)
    args = parser.parse_args(argv)
    try:
        prepared = data_processor.prepare_data(args.dataset, args.data_dir, args.split, args.split_seed, "user",
                                               args.time_window)
    except data_processor.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("| baseline | test masked RMSE (per-user) | test RMSE (global) | val RMSE (global) | test NDCG@10 |")
    print("|---|---|---|---|---|")
    for result in baseline_models.evaluate_baselines(prepared.data, prepared.split):
        name = result["name"] + (f" (reg {result['reg']:g})" if "reg" in result else "")
        ndcg = "" if result["test_ndcg_at_10"] is None else f"{result['test_ndcg_at_10']:.4f}"
        print(f"| {name} | {result['test_masked_rmse']:.4f} | {result['test_rmse']:.4f} | {result['val_rmse']:.4f} "
              f"| {ndcg} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
