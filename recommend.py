"""Top-N recommendations for a user from a trained model.

    python3 recommend.py --user 42 [--top 10] [--results-dir results/latest]

--user is the data set's own UserID. The user's unseen movies (none of their ratings, in any part of the split)
are ranked by the rating the model predicts from the user's training ratings, for user- and item-based models.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import data_processor
import main
import metrics


def top_n(model, prepared, orientation, user_index, count=10):
    """[(MovieID, title, predicted rating)] of the `count` best movies the user has not rated."""
    data, inputs = prepared["data"], model.input_matrix(prepared["train"])
    if orientation == "user":
        predicted = metrics.predict_rows(model, inputs, np.array([user_index]))[0]
    else:  # the user's column: one prediction from each item's row
        items = np.arange(data["n_items"])
        predicted = metrics.predict_at(model, inputs, items, np.full_like(items, user_index))
    candidates = np.ones(data["n_items"], dtype=bool)
    candidates[data["items"][data["users"] == user_index]] = False
    best = np.flatnonzero(candidates)[np.argsort(-predicted[candidates], kind="stable")[:count]]
    return [(int(data["item_ids"][item]), data["titles"].get(int(item), f"MovieID {data['item_ids'][item]}"),
             float(predicted[item])) for item in best]


def print_top_n(recommendations, user_id):
    print(f"\nTop {len(recommendations)} recommendations for UserID {user_id} (movies they have not rated):")
    for rank, (movie_id, title, predicted) in enumerate(recommendations, start=1):
        print(f"{rank:2d}. {title}  (MovieID {movie_id}, predicted {predicted:.2f})")


def main_recommend(argv=None):
    import evaluate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user", type=int, required=True, help="the data set's UserID")
    parser.add_argument("--top", type=int, default=10, help="how many movies")
    parser.add_argument("--results-dir", type=Path, default=main.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be at least 1")
    try:
        network, config, prepared = evaluate.load_run(args.results_dir)
    except (main.ConfigError, data_processor.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    user_ids = prepared["data"]["user_ids"]
    index = int(np.searchsorted(user_ids, args.user))
    if index >= len(user_ids) or user_ids[index] != args.user:
        print(f"error: --user {args.user} is not a UserID of {config['dataset']} (its ids run from {user_ids[0]} "
              f"to {user_ids[-1]}, {len(user_ids):,} users). Fix: pick a UserID that has ratings.", file=sys.stderr)
        return 2
    print_top_n(top_n(network, prepared, config["orientation"], index, args.top), args.user)
    return 0


if __name__ == "__main__":
    sys.exit(main_recommend())
