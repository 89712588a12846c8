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
import inference
import reporting
from config import ConfigError

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user", type=int, required=True, help="the data set's UserID")
    parser.add_argument("--top", type=int, default=10, help="how many movies")
    parser.add_argument("--results-dir", type=Path, default=reporting.DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be at least 1")
    try:
        network, config, prepared = inference.load_run(args.results_dir)
    except (ConfigError, data_processor.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    user_ids = prepared.data.user_ids
    index = int(np.searchsorted(user_ids, args.user))
    if index >= len(user_ids) or user_ids[index] != args.user:
        print(f"error: --user {args.user} is not a UserID of {config['dataset']} (its ids run from {user_ids[0]} "
              f"to {user_ids[-1]}, {len(user_ids):,} users). Fix: pick a UserID that has ratings.", file=sys.stderr)
        return 2
    inference.print_top_n(inference.top_n(network, prepared, index, args.top), args.user)
    return 0


if __name__ == "__main__":
    sys.exit(main())
