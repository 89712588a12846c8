"""The generic splits: each returns a Split of sorted, disjoint index arrays into a data set's rating arrays, drawn
from the ratings in their canonical order (by user, then item), so a split depends on the set of ratings alone.
A data set's own protocols (official split files, time windows) live in its format's module and use these."""

import dataclasses

import numpy as np

from datasets.lines import DataError

SPLITS = ["stratified", "random", "time"]  # every data set's; a format adds its own (DataSet.splits)
SPLIT_ALIASES = {"seed": "stratified"}  # earlier names of splits, still accepted
SPLIT_SEED = 1994
TEST_FRACTION = 0.1  # of all ratings, in the seed and random splits
VAL_FRACTION = 0.1  # stratified split: of the ratings left after the test split (81/9/10 overall)
RANDOM_VAL_FRACTION = 0.05  # random and official splits: validation ratings drawn from the training part
STRATIFIED_MIN_USER_RATINGS = 3  # stratified split: users with fewer ratings stay wholly in training (not stratifiable)
TIME_TEST_FRACTION = 0.1  # time split: the last 10% of the time range is the test window
MIN_TOTAL_RATINGS = 100  # below these a run measures nothing meaningful
MIN_RATINGS = {"train": 50, "val": 5, "test": 5}


@dataclasses.dataclass
class Split:
    """Sorted, disjoint index arrays into a Ratings' arrays."""
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def refit_split(split):
    """The refit protocol's split: the validation ratings join the training ones (the test ones stay apart). The
    validation part is kept, so that predictions there can be made, but it is trained on now: it selects nothing."""
    return Split(np.sort(np.concatenate([split.train, split.val])), split.val, split.test)


def generic_split(data, split, seed):
    """stratified, random or time (the last TIME_TEST_FRACTION of the time range tests)."""
    if split == "stratified":
        return stratified_split(data, seed)
    if split == "random":
        return random_split(data, seed)
    timestamps = require_timestamps(data)
    first, last = int(timestamps.min()), int(timestamps.max())
    test_from = last - TIME_TEST_FRACTION * (last - first)
    in_test_window = timestamps >= test_from
    too_few = in_test_window.sum() < 2 * (MIN_RATINGS["val"] + MIN_RATINGS["test"])
    if too_few or (~in_test_window).sum() < MIN_RATINGS["train"]:
        raise DataError(f"--split time: the ratings' dates run from {rating_at(data, timestamps.argmin())} to "
                        f"{rating_at(data, timestamps.argmax())}, and the last {TIME_TEST_FRACTION:.0%} of that "
                        f"range holds {in_test_window.sum():,} of {len(timestamps):,} ratings: a date far from the "
                        f"others (one of those two, most likely) stretches it. Fix: correct that rating's date, or "
                        f"use --split random.")
    return time_window_split(data, seed, ~in_test_window, in_test_window)


def rating_at(data, index):
    """A rating in words, for messages: its date, user and item."""
    date = np.datetime64(int(data.timestamps[index]), "s").astype("datetime64[D]")
    return f"{date} (user {data.user_ids[data.users[index]]}, item {data.item_ids[data.items[index]]})"


def stratified_split(data, seed):
    """The seed's split: 10% of the ratings for test, stratified by user, then 10% of the rest for validation,
    stratified by user (scikit-learn's train_test_split): 81/9/10. Users with fewer than
    STRATIFIED_MIN_USER_RATINGS ratings cannot be stratified: their ratings all stay in training."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(data.users, minlength=data.n_users)
    stratifiable = counts[data.users] >= STRATIFIED_MIN_USER_RATINGS
    index = np.flatnonzero(stratifiable)
    kept_in_train = np.flatnonzero(~stratifiable)
    if kept_in_train.size:
        print(f"Note: {int((counts < STRATIFIED_MIN_USER_RATINGS).sum()):,} users have fewer than "
              f"{STRATIFIED_MIN_USER_RATINGS} ratings; their {kept_in_train.size:,} ratings stay in training.")
    try:
        rest, test = train_test_split(index, test_size=TEST_FRACTION, stratify=data.users[index],
                                      random_state=seed)
        train, val = train_test_split(rest, test_size=VAL_FRACTION, stratify=data.users[rest],
                                      random_state=seed)
    except ValueError as error:
        raise DataError(f"the stratified split cannot be made from {len(index):,} ratings ({error}). Fix: use more "
                        f"data, or --split random.") from None
    return Split(np.sort(np.concatenate([train, kept_in_train])), np.sort(val), np.sort(test))

def random_split(data, seed, candidates=None, test=None):
    """The literature's protocol: TEST_FRACTION of the ratings drawn uniformly for test (unless `test` is given),
    then RANDOM_VAL_FRACTION of the rest for validation (what early stopping watches); the others train."""
    rng = np.random.default_rng(seed)
    candidates = np.arange(len(data.ratings)) if candidates is None else candidates
    if test is None:
        shuffled = rng.permutation(candidates)
        n_test = int(round(TEST_FRACTION * len(shuffled)))
        test, candidates = shuffled[:n_test], shuffled[n_test:]
    shuffled = rng.permutation(candidates)
    n_val = int(round(RANDOM_VAL_FRACTION * len(shuffled)))
    return Split(np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val]), np.sort(test))


def require_timestamps(data):
    if data.timestamps is None:
        raise DataError(f"--split time needs timestamps, but the ratings in {data.data_dir} have none. Fix: use "
                        f"a ratings file with timestamps, or --split stratified or random.")
    return data.timestamps


def time_window_split(data, seed, in_train, in_test_window):
    """Train on the ratings in_train; the test window's ratings of users and items seen in training are split
    half and half into validation and test with the split seed (the others are dropped)."""
    train, in_test_window = np.flatnonzero(in_train), np.flatnonzero(in_test_window)
    seen_users = np.zeros(data.n_users, dtype=bool)
    seen_users[data.users[train]] = True
    seen_items = np.zeros(data.n_items, dtype=bool)
    seen_items[data.items[train]] = True
    kept = in_test_window[seen_users[data.users[in_test_window]] & seen_items[data.items[in_test_window]]]
    shuffled = np.random.default_rng(seed).permutation(kept)
    half = len(shuffled) // 2
    return Split(train, np.sort(shuffled[:half]), np.sort(shuffled[half:]))


def check_split_sizes(data, parts, split):
    """Refuse splits too small to measure anything, before any training."""
    for part, minimum in MIN_RATINGS.items():
        if len(getattr(parts, part)) < minimum:
            raise DataError(f"--split {split} leaves {len(getattr(parts, part))} {part} ratings of "
                            f"{len(data.ratings):,} "
                            f"(at least {minimum} are needed for a meaningful run). Fix: use a larger data set"
                            + (", or a wider --time-window." if split == "time" else "."))
    for name, count in (("users", data.n_users), ("items", data.n_items)):
        if count < 2:
            raise DataError(f"the data has {count} {name}: at least 2 are needed. Fix: use a larger data set.")
