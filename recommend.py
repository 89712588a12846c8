"""Recommendations from a trained model (the run in --results-dir).

    python3 recommend.py --user 42 [--top 10]              # one user's top N, printed
    python3 recommend.py --all-users --top 10 [--output FILE]  # every user's top N, to a CSV file
    python3 recommend.py --users users.txt --top 10         # the users listed in a file (one id per line)
    python3 recommend.py --similar-to 2571 [--top 10]       # the items nearest to an item
    python3 recommend.py --ratings "2571:5,1196:4,3793:2"   # a new user's top N from a few ratings

Ids are the data set's own (numbers, or any text for --dataset csv). An item the user rated, in any part of the
split, is never recommended. The CSV file has the columns user_id, rank, item_id, predicted_rating, title (ratings
clipped to the scale) and goes to RESULTS_DIR/recommendations.csv unless --output says otherwise; it is derived
from the ratings, so keep it out of version control like the data.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import utils  # noqa: F401  first of the project's modules: it refuses a Python older than 3.11, clearly
import data_processor
import recommendations
import reporting
from config import ConfigError


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    wanted = parser.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--user", help="one user's id: print their top N")
    wanted.add_argument("--all-users", action="store_true", help="every user's top N, to --output")
    wanted.add_argument("--users", type=Path, help="a file of user ids, one per line: their top N, to --output")
    wanted.add_argument("--similar-to", metavar="ITEM", help="an item's id: the items nearest to it")
    wanted.add_argument("--ratings", metavar="ITEM:RATING,...", help="a new user's ratings: their top N")
    parser.add_argument("--top", type=int, default=10, help="how many items (default 10)")
    parser.add_argument("--output", type=Path, help="the CSV file of --all-users/--users "
                                                    "(default RESULTS_DIR/recommendations.csv)")
    parser.add_argument("--results-dir", type=Path, default=reporting.DEFAULT_RESULTS_DIR)
    reporting.add_moved_data_flags(parser)
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be at least 1")
    if args.output and not (args.all_users or args.users):
        parser.error("--output is the CSV file of --all-users or --users; the other answers are printed")
    return args


def check_output(path):
    """Refuse a destination that cannot be written before any work: a folder, a missing or unwritable folder."""
    path = Path(path)
    if path.is_dir():
        raise recommendations.RecommendError(f"--output {path} is a folder. Fix: give a file name, e.g. "
                                             f"--output {path / 'recommendations.csv'}.")
    if not path.parent.is_dir():
        raise recommendations.RecommendError(f"--output {path}: the folder {path.parent} does not exist. Fix: "
                                             f"create it (mkdir -p {path.parent}) or write elsewhere.")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise recommendations.RecommendError(f"--output {path} cannot be written (no permission). Fix: write "
                                             f"into a folder of yours.")


def read_user_list(path, user_ids):
    """The dense indices of the user ids in a file, one per line (blank lines skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise recommendations.RecommendError(f"--users {path} cannot be read ({error}). Fix: give a text file "
                                             f"of user ids, one per line.") from None
    indices, seen = [], {}
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if line.strip() in seen:
                raise recommendations.RecommendError(f"{path}, line {number}: user {line.strip()} again (line "
                                                     f"{seen[line.strip()]}). Fix: list each user once.")
            seen[line.strip()] = number
            try:
                indices.append(recommendations.index_of(user_ids, line.strip(), "user"))
            except recommendations.RecommendError as error:
                raise recommendations.RecommendError(f"{path}, line {number}: {error}") from None
    if not indices:
        raise recommendations.RecommendError(f"--users {path} lists no user. Fix: one user id per line.")
    return np.array(indices)


def parse_ratings(text, data):
    """{item index: rating} from 'ITEM:RATING,ITEM:RATING,...', each rating on the data set's scale."""
    low, high, _ = data.scale
    ratings = {}
    for pair in text.split(","):
        item, _, rating = pair.strip().rpartition(":")
        try:
            value = float(rating)
        except ValueError:
            value = None
        if not item or value is None or not low <= value <= high:
            raise recommendations.RecommendError(
                f"--ratings: {pair.strip()!r} is not ITEM:RATING with a rating in {low:g}-{high:g}. Fix: e.g. "
                f"--ratings \"{data.item_ids[0]}:5,{data.item_ids[1]}:3\".")
        index = recommendations.index_of(data.item_ids, item, "item")
        if index in ratings:
            raise recommendations.RecommendError(f"--ratings rates item {item} twice. Fix: give each item once.")
        ratings[index] = value
    return ratings


def answer(args, network, prepared):
    data = prepared.data
    if args.user is not None:
        index = recommendations.index_of(data.user_ids, args.user, "user")
        recommendations.print_top_n(recommendations.top_n(network, prepared, index, args.top), args.user)
    elif args.similar_to is not None:
        index = recommendations.index_of(data.item_ids, args.similar_to, "item")
        label = recommendations.item_label(data, index)
        named = f" (item {args.similar_to})" if recommendations.id_after(label, args.similar_to) else ""
        print(f"\nItems nearest to {label}{named}, by the cosine of their learned representations:")
        for rank, (item_id, title, cosine) in enumerate(
                recommendations.similar_items(network, prepared, index, args.top)[1:], start=1):
            print(f"{rank:2d}. {title}  ({recommendations.id_after(title, item_id)}cosine {cosine:.3f})")
    elif args.ratings is not None:
        ratings = parse_ratings(args.ratings, data)
        recommendations.print_top_n(recommendations.cold_user_top_n(network, prepared, ratings, args.top),
                                    "new user")
    else:
        users = np.arange(data.n_users) if args.all_users else read_user_list(args.users, data.user_ids)
        output = args.output or args.results_dir / "recommendations.csv"
        count, seconds = recommendations.write_all_users(output, network, prepared, users, args.top)
        print(f"Top {args.top} of {count:,} users written to {output} in {seconds:.1f} s "
              f"({seconds / count * 10000:.1f} s per 10,000 users, {count / seconds:,.0f} users/s)")


def main(argv=None):
    args = parse_args(argv)
    import inference  # TensorFlow is imported once the arguments are read: --help answers at once

    try:
        if args.all_users or args.users:
            check_output(args.output or args.results_dir / "recommendations.csv")
        network, config, prepared = inference.load_run(args.results_dir, reporting.moved_data(args))
        answer(args, network, prepared)
    except (ConfigError, data_processor.DataError, recommendations.RecommendError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
