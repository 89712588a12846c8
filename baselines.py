"""Simple baselines on the same split, to put the autoencoder's numbers in context.

    python3 baselines.py [--data-dir PATH] [--split-seed N]

- global mean: every rating predicted as the mean training rating;
- user+item biases: mean + b_user + b_item, fitted by alternating least squares with L2 strength `reg`
  (chosen on the validation ratings, never on the test ratings).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # utils imports TensorFlow

import numpy as np

import data_processor
import utils

BIAS_REGULARISATION = [1.0, 3.0, 5.0, 10.0, 20.0, 40.0]  # candidates, picked on validation
BIAS_ITERATIONS = 15


def fit_biases(users, items, ratings, n_users, n_items, reg, iterations=BIAS_ITERATIONS):
    """Minimise sum (r - mu - b_u - b_i)^2 + reg * (|b_u|^2 + |b_i|^2) by exact alternating updates."""
    mean = float(ratings.mean())
    user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
    user_count = np.bincount(users, minlength=n_users)
    item_count = np.bincount(items, minlength=n_items)
    for _ in range(iterations):
        item_bias = np.bincount(items, ratings - mean - user_bias[users], n_items) / (item_count + reg)
        user_bias = np.bincount(users, ratings - mean - item_bias[items], n_users) / (user_count + reg)
    return mean, user_bias, item_bias


def evaluate_baselines(data, split):
    """Both metrics of both baselines on validation and test. Returns {name: {metric: value}}."""
    train_users, train_items, train_ratings = (data[key][split["train"]] for key in ("users", "items", "ratings"))
    parts = {part: (data["users"][split[part]], data["items"][split[part]], data["ratings"][split[part]])
             for part in ("val", "test")}

    def scores(predict, name):
        result = {"name": name}
        for part, (users, items, ratings) in parts.items():
            predictions = predict(users, items)
            result[f"{part}_masked_rmse"] = utils.per_user_masked_rmse(users, ratings, predictions)
            result[f"{part}_rmse"] = utils.global_rmse(ratings, predictions)
        return result

    mean = float(train_ratings.mean())
    results = [scores(lambda users, items: np.full(len(users), mean), "global mean")]
    best = None
    for reg in BIAS_REGULARISATION:
        mu, user_bias, item_bias = fit_biases(train_users, train_items, train_ratings.astype(np.float64),
                                              data["n_users"], data["n_items"], reg)
        result = scores(lambda users, items: mu + user_bias[users] + item_bias[items], "user+item bias")
        result["reg"] = reg
        if best is None or result["val_rmse"] < best["val_rmse"]:
            best = result
    results.append(best)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--split-seed", type=int, default=data_processor.SPLIT_SEED)
    args = parser.parse_args(argv)
    try:
        data = data_processor.load_movielens(data_processor.ensure_movielens(
            data_processor.resolve_data_dir(args.data_dir)))
    except data_processor.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    split = data_processor.split_ratings(data, seed=args.split_seed)
    print("| baseline | test masked RMSE (seed, per-user) | test RMSE (global) | val RMSE (global) |")
    print("|---|---|---|---|")
    for result in evaluate_baselines(data, split):
        name = result["name"] + (f" (reg {result['reg']:g})" if "reg" in result else "")
        print(f"| {name} | {result['test_masked_rmse']:.4f} | {result['test_rmse']:.4f} | {result['val_rmse']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
