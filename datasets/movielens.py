"""MovieLens (GroupLens): ML-100K, ML-1M, ML-10M and ML-20M, and ML-100K's official splits u1-u5, ua and ub.

Downloaded from GroupLens on first use and verified (ML-1M by its SHA-256, ML-100K by its MD5, the others by the
MD5 GroupLens publishes beside each zip). ML-1M's ratings.dat is read with or without its timestamp field.
"""

from pathlib import Path

import numpy as np

from datasets import splits
from datasets.lines import DataError, bad_line, read_numeric_table, read_titles, validate_ratings
from datasets.source import DataSet, Read

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
# How each ratings file is laid out: the separator pandas reads (`replace`, the file's own separator, is turned into
# it first), a header line, and how many trailing fields may be missing (ML-1M's timestamps).
RATINGS_FORMATS = {"ml-100k": dict(sep="\t", replace=None, header=False, optional=0),
                   "ml-1m": dict(sep="\t", replace="::", header=False, optional=1),
                   "ml-10m": dict(sep="\t", replace="::", header=False, optional=0),
                   "ml-20m": dict(sep=",", replace=None, header=True, optional=0)}
OFFICIAL_SPLITS = ["u1", "u2", "u3", "u4", "u5", "ua", "ub"]  # ML-100K's: u1-u5 5-fold, ua/ub 10 ratings a user


def hint(name):
    return f"replace it with the file from {GROUPLENS}{name}.zip"


def read_movielens_ratings(path, dataset, scale=(1.0, 5.0, 1.0)):
    """(user ids, movie ids, ratings, timestamps or None) of a MovieLens ratings file, validated line by line."""
    sep, replace, header, optional = RATINGS_FORMATS[dataset].values()
    fix = hint(dataset)
    names = ["UserID", "MovieID", "Rating", "Timestamp"]
    dtypes = {"UserID": np.int64, "MovieID": np.int64, "Rating": np.float32, "Timestamp": np.float64}
    frame, raw = read_numeric_table(path, sep, names, dtypes, fix, optional=optional, header=header,
                                    replace=replace)
    users, items, ratings = (frame[name].to_numpy() for name in names[:3])
    validate_ratings(path, raw, 2 if header else 1, users, items, ratings, scale, names, fix)
    timestamps = frame["Timestamp"].to_numpy()
    missing = np.isnan(timestamps)
    if missing.any() and not missing.all():  # some lines have one: a line without is a mistake, not a layout
        bad_line(path, raw, int(np.argmax(missing)) + (2 if header else 1), "Timestamp is missing or not a number "
                 "(other lines have one)", fix)
    return users, items, ratings, None if missing.any() else timestamps.astype(np.int64)


def read_ml100k(data_dir, options=None):
    users, items, ratings, timestamps = read_movielens_ratings(data_dir / "u.data", "ml-100k")
    titles = read_titles(data_dir / "u.item", hint("ml-100k"), "|")  # a line of u.item has 25 fields, not 24
    return Read(users, items, ratings, timestamps, titles, (1.0, 5.0, 1.0), data_dir, [data_dir / "u.data"],
                (data_dir / "u.data", 1, hint("ml-100k")))


def read_ml1m(data_dir, options=None):
    users, items, ratings, timestamps = read_movielens_ratings(data_dir / "ratings.dat", "ml-1m")
    check_ml1m_users(data_dir, users)
    titles = read_titles(data_dir / "movies.dat", hint("ml-1m"), "::", fields=3)
    return Read(users, items, ratings, timestamps, titles, (1.0, 5.0, 1.0), data_dir, [data_dir / "ratings.dat"],
                (data_dir / "ratings.dat", 1, hint("ml-1m")))


def read_ml10m(data_dir, options=None):
    users, items, ratings, timestamps = read_movielens_ratings(data_dir / "ratings.dat", "ml-10m", HALF_STARS)
    titles = read_titles(data_dir / "movies.dat", hint("ml-10m"), "::", fields=3)
    return Read(users, items, ratings, timestamps, titles, HALF_STARS, data_dir, [data_dir / "ratings.dat"],
                (data_dir / "ratings.dat", 1, hint("ml-10m")))


def read_ml20m(data_dir, options=None):
    users, items, ratings, timestamps = read_movielens_ratings(data_dir / "ratings.csv", "ml-20m", HALF_STARS)
    titles = read_titles(data_dir / "movies.csv", hint("ml-20m"), ",", header=True, fields=3, quoted=True)
    return Read(users, items, ratings, timestamps, titles, HALF_STARS, data_dir, [data_dir / "ratings.csv"],
                (data_dir / "ratings.csv", 2, hint("ml-20m")))


HALF_STARS = (0.5, 5.0, 0.5)


def check_ml1m_users(data_dir, user_ids):
    """users.dat is only validated (the model uses ratings alone): ids must be integers, and every rating's UserID
    must be in it."""
    path = data_dir / "users.dat"
    if not path.exists():
        print(f"Warning: {path} not found; skipping the check of user ids against it.")
        return
    names = ["UserID", "Gender", "Age", "Occupation", "Zip"]
    frame, _ = read_numeric_table(path, "\t", names, {"UserID": np.int64, "Age": np.int64, "Occupation": np.int64},
                                  hint("ml-1m"), replace="::")
    unknown = np.setdiff1d(user_ids, frame["UserID"].to_numpy())
    if unknown.size:
        raise DataError(f"{data_dir / 'ratings.dat'} rates as UserID {unknown[0]}, which is not in {path}. "
                        f"Fix: use matching files from {GROUPLENS}ml-1m.zip.")


def official_split(data, split, seed):
    """ML-100K's official splits: u1-u5 (5-fold) and ua/ub (10 ratings per user for test) as GroupLens ships them;
    validation ratings are RANDOM_VAL_FRACTION of the .base file's, drawn with the split seed."""
    data_dir = Path(data.data_dir)
    fix = hint("ml-100k")
    pair_of_rating = data.users.astype(np.int64) * data.n_items + data.items
    order = np.argsort(pair_of_rating)
    parts = {}
    for part, suffix in (("base", "base"), ("test", "test")):
        path = data_dir / f"{split}.{suffix}"
        if not path.exists():
            raise DataError(f"{path} not found: --split {split} needs ML-100K's official split files. "
                            f"Fix: {fix}.")
        users, items, _, _ = read_movielens_ratings(path, "ml-100k")
        user_index = np.searchsorted(data.user_ids, users)
        item_index = np.searchsorted(data.item_ids, items)
        known = (user_index < data.n_users) & (item_index < data.n_items)
        known[known] &= (data.user_ids[user_index[known]] == users[known]) & (
            data.item_ids[item_index[known]] == items[known])
        pairs = user_index.astype(np.int64) * data.n_items + item_index
        position = np.searchsorted(pair_of_rating, pairs, sorter=order)
        found = known & (position < len(order))
        found[found] &= pair_of_rating[order[position[found]]] == pairs[found]
        if not found.all():
            line_number = int(np.argmax(~found)) + 1
            raise DataError(f"{path}, line {line_number}: a rating that is not in u.data. Fix: {fix}.")
        parts[part] = np.sort(order[position])  # the canonical order, not the file's
    return splits.random_split(data, seed, candidates=parts["base"], test=parts["test"])


# The data sets of this format, as the table in datasets/__init__.py lists them.
DATASETS = {
    "ml-100k": DataSet(read_ml100k, (1.0, 5.0, 1.0), "MovieLens 100K: 943 users, 1,682 movies, 100,000 ratings",
                       folder="ml-100k", url=GROUPLENS + "ml-100k.zip", checksum="0e33842e24a9c977be4e0107933c0723",
                       ratings_file="u.data",
                       splits={name: (lambda data, seed, name=name: official_split(data, name, seed))
                               for name in OFFICIAL_SPLITS}, splits_name="ML-100K's official splits"),
    "ml-1m": DataSet(read_ml1m, (1.0, 5.0, 1.0), "MovieLens 1M: 6,040 users, 3,706 movies, 1,000,209 ratings",
                     folder="ml-1m", url=GROUPLENS + "ml-1m.zip",
                     checksum="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                     ratings_file="ratings.dat", environment="MOVIELENS_DIR"),
    "ml-10m": DataSet(read_ml10m, HALF_STARS, "MovieLens 10M: half stars", folder="ml-10M100K",
                      url=GROUPLENS + "ml-10m.zip", ratings_file="ratings.dat"),
    "ml-20m": DataSet(read_ml20m, HALF_STARS, "MovieLens 20M: half stars", folder="ml-20m",
                      url=GROUPLENS + "ml-20m.zip", ratings_file="ratings.csv"),
}
