"""The one door to the data: find or download a data set, parse and validate it, index it densely, split it,
build the sparse rating matrices. `prepare_data` is the one chain that every script uses:
    ensure_dataset -> load_dataset -> split_ratings -> sparse_rating_matrix

The formats themselves (where each data set comes from, how its files are read, its own protocols) live behind
this door, in datasets/ (one module a format, a table of data sets); the generic splits in datasets/splits.py.
Ratings are kept as aligned NumPy arrays (dense user index, dense item index, rating, timestamp), in one canonical
order (by user id, then item id), so that a split depends on the set of ratings alone. Users and items are numbered
densely from the ids that occur (`user_ids[k]` is the original id of user k); results and recommendations speak in
the original ids. A row of a matrix is a user (the paper's orientation) or an item (I-AutoRec's).
"""

import dataclasses
import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np

from datasets import DATASETS, download
from datasets.lines import DataError, bad_line, read_bytes
from datasets import splits
from datasets.splits import SPLIT_ALIASES, SPLIT_SEED, Split, refit_split

PROJECT_DIR = Path(__file__).resolve().parent
DATA_DIR = PROJECT_DIR / "data"  # a data set lives in DATA_DIR/<its folder> unless --data-dir says otherwise
SPLITS = [*splits.SPLITS, *{name: None for source in DATASETS.values() for name in source.splits}]  # --split's
TIME_WINDOWS = ["full", *{name: None for source in DATASETS.values() for name in source.time_windows
                          if name != "full"}]  # --time-window's


@dataclasses.dataclass
class Ratings:
    """A loaded data set: aligned arrays of the ratings (dense user and item indices, rating, timestamp in seconds
    or None), the original ids (`user_ids[k]` is user k's), the titles ({item index: title}), the rating scale
    (low, high, step) and where it came from (data set, folder, {file name: sha256})."""
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None
    user_ids: np.ndarray
    item_ids: np.ndarray
    titles: dict
    scale: tuple
    dataset: str
    data_dir: str
    files: dict

    @property
    def n_users(self):
        return len(self.user_ids)

    @property
    def n_items(self):
        return len(self.item_ids)


@dataclasses.dataclass
class Prepared:
    """What a run reads: the data, its split, and the sparse train and validation matrices (rows are users or
    items, by `orientation`) of shape `shape`."""
    data: Ratings
    split: Split
    orientation: str
    shape: tuple
    train: object  # scipy.sparse.csr_matrix
    val: object


# ----------------------------------------------------------------------------------------------------------------
# The data chain every script uses, and the record of which ratings a run read.

def prepare_data(dataset, data_dir, split, split_seed, orientation, time_window="full", data=None, options=None):
    """Load (unless `data` is given), split and build the matrices the network reads."""
    if data is None:
        data = load_data(dataset, data_dir, options)
    parts = split_ratings(data, split, split_seed, time_window)
    print(f"Split {split} (split seed {split_seed}): train/val/test {len(parts.train):,}/{len(parts.val):,}/"
          f"{len(parts.test):,} ratings")
    shape = matrix_shape(data, orientation)
    return Prepared(data, parts, orientation, shape, *(sparse_rating_matrix(*triples(data, part, orientation), shape)
                                                        for part in (parts.train, parts.val)))


def prepare_run_data(config, data=None):
    """prepare_data with a run's configuration (main.py's constants in lower case, as config.json records them);
    a refit (config's refit_schedule) trains on the training and validation ratings together."""
    prepared = prepare_data(config["dataset"], config["data_dir"], config["split"], config["split_seed"],
                            config["orientation"], config["time_window"], data,
                            DATASETS[config["dataset"]].options(config))
    return with_validation_in_training(prepared) if config.get("refit_schedule") else prepared


def with_validation_in_training(prepared):
    """The prepared data of a refit: the train matrix holds the training and validation ratings."""
    split = refit_split(prepared.split)
    print(f"Refit: training on train + validation, {len(split.train):,} ratings")
    train = sparse_rating_matrix(*triples(prepared.data, split.train, prepared.orientation), prepared.shape)
    return dataclasses.replace(prepared, split=split, train=train)


def load_run_data(config):
    """load_data with a run's configuration."""
    return load_data(config["dataset"], config["data_dir"], DATASETS[config["dataset"]].options(config))


def ratings_fingerprint(data):
    """What identifies the ratings themselves, whatever file, layout or line order they came in: the sha256 of the
    canonically ordered (user id, item id, rating) triples, and their counts and sum (to name a difference)."""
    digest = hashlib.sha256()
    for ids in (data.user_ids, data.item_ids):
        digest.update("\x1f".join(map(str, ids.tolist())).encode() + b"\x1e")
    for column, dtype in ((data.users, np.int32), (data.items, np.int32), (data.ratings, np.float32)):
        digest.update(np.ascontiguousarray(column, dtype).tobytes())
    return {"sha256": digest.hexdigest(), "ratings": len(data.ratings), "users": data.n_users, "items": data.n_items,
            "rating_sum": round(float(data.ratings.sum(dtype=np.float64)), 3)}


def check_recorded(data, config, trained, ids=None):
    """Refuse ratings other than those `trained` (a run, in words) recorded in its config.json, naming what
    differs; another copy of the same ratings (other file, layout or line order) is accepted. Runs recorded
    before the ratings' fingerprint are checked by their files' checksums and ids.json's ids."""
    fix = ("Fix: point the program at the data that run was trained on (evaluate.py, recommend.py and blend.py "
           "take --data-dir, or --ratings-file for your own file), or train a new model on this one.")
    recorded = config.get("ratings_fingerprint")
    if recorded:
        found = ratings_fingerprint(data)
        if found != recorded:
            differences = [f"{key} {recorded.get(key)} recorded, {found[key]} found" for key in found
                           if key != "sha256" and found[key] != recorded.get(key)]
            raise DataError(f"the ratings in {data.data_dir} are not the ratings {trained} was trained on ("
                            f"{'; '.join(differences) or 'as many ratings, users and items, but other values'}). "
                            f"{fix}")
        return
    same_ids = ids is None or (ids.get("user_ids") == data.user_ids.tolist()
                               and ids.get("item_ids") == data.item_ids.tolist())
    if data.files != config["data_files"] or not same_ids:
        raise DataError(f"the data in {data.data_dir} is not the data {trained} was trained on (file checksums or "
                        f"ids differ: recorded {config['data_files']}, found {data.files}). {fix}")


# ----------------------------------------------------------------------------------------------------------------
# Finding and loading.

def load_data(dataset, data_dir=None, options=None):
    """Find (or download) the data set and load it; `options` is what its reader needs of a run's configuration
    (DataSet.options: your own file's layout)."""
    source = DATASETS[dataset]
    if source.folder:
        data_dir = ensure_dataset(dataset, resolve_data_dir(dataset, data_dir))
    return load_dataset(dataset, data_dir, options)


def resolve_data_dir(dataset, flag_value=None):
    """--data-dir wins; then the data set's environment variable (DataSet.environment), if it has one; then
    DATA_DIR/<its folder>."""
    variable = DATASETS[dataset].environment
    from_environment = os.environ.get(variable) if variable else None
    return Path(flag_value or from_environment or DATA_DIR / DATASETS[dataset].folder).expanduser()


def ensure_dataset(dataset, data_dir):
    """Return data_dir once it holds the data set, downloading and unpacking it (verified) if it does not."""
    return download.ensure_dataset(dataset, DATASETS[dataset], data_dir)


def load_dataset(dataset, data_dir, options=None):
    """Parse and validate a data set into Ratings, ids numbered densely, in the canonical order."""
    started = time.perf_counter()
    read = DATASETS[dataset].read(Path(data_dir).resolve() if data_dir is not None else None, options)
    return index_ratings(dataset, read, started)


def index_ratings(dataset, read, started):
    """Ratings from a reader's arrays (a datasets.source.Read): users and items numbered densely, the ratings put
    in the canonical order, a repeated (user, item) pair refused (naming its two lines where the reader says
    where its ratings start)."""
    user_ids, item_ids, ratings, timestamps = read.user_ids, read.item_ids, read.ratings, read.timestamps
    data_dir, lines = Path(read.data_dir), read.lines
    user_ids_sorted, users = dense_index(user_ids)
    item_ids_sorted, items = dense_index(item_ids)
    pairs = users.astype(np.int64) * len(item_ids_sorted) + items
    order = np.argsort(pairs, kind="stable")  # the canonical order: by user id, then item id
    pairs = pairs[order]
    if (pairs[1:] == pairs[:-1]).any():  # a repeated pair: name its two lines
        repeated = np.flatnonzero(pairs[1:] == pairs[:-1])
        first, second = sorted((int(order[repeated[0]]), int(order[repeated[0] + 1])))
        if lines is None:
            raise DataError(f"the ratings in {data_dir}: user {user_ids[first]} rated item {item_ids[first]} "
                            f"twice. Fix: delete one of the two ratings, or use the original files.")
        path, offset, fix = lines
        bad_line(path, read_bytes(path, ""), second + offset, f"(user, item) already rated on line {first + offset}",
                 fix)
    del pairs
    # Every split is drawn from the ratings in this order, so it depends on the set of ratings alone, never on the
    # order or layout of the file's lines.
    users, items, ratings = users[order], items[order], ratings[order].astype(np.float32)
    timestamps = None if timestamps is None else timestamps[order]
    del order
    position = {item: index for index, item in enumerate(item_ids_sorted.tolist())}
    data = Ratings(users, items, ratings, timestamps, user_ids_sorted, item_ids_sorted,
                   {position[item]: title for item, title in read.titles.items() if item in position}, read.scale,
                   dataset, str(data_dir), {str(path.relative_to(data_dir)) if path.is_relative_to(data_dir)
                                            else str(path): file_fingerprint(path) for path in read.files})
    print(f"Data: {len(ratings):,} ratings of {data.n_users:,} users and {data.n_items:,} items from "
          f"{data_dir} ({time.perf_counter() - started:.1f} s)")
    return data


def dense_index(ids):
    """(the distinct ids sorted, each rating's index among them as int32), as np.unique(return_inverse=True) gives
    them, text ids that are all whole numbers in numeric order; integer ids through pandas' hash table, which needs
    a third of np.unique's memory (it sorts no copy)."""
    if ids.dtype.kind in "iu":
        import pandas as pd

        codes, distinct = pd.factorize(ids, sort=True)
        return np.asarray(distinct), codes.astype(np.int32)
    distinct, codes = np.unique(ids, return_inverse=True)
    if all(INTEGER_TEXT.fullmatch(text) for text in distinct.tolist()):  # text ids that are numbers sort as numbers
        numeric_order = np.array(sorted(range(len(distinct)), key=lambda k: (int(distinct[k]), distinct[k])))
        rank = np.empty_like(numeric_order)
        rank[numeric_order] = np.arange(len(numeric_order))
        distinct, codes = distinct[numeric_order], rank[codes]
    return distinct, codes.astype(np.int32)


INTEGER_TEXT = re.compile(r"[+-]?\d{1,30}")


def file_fingerprint(path, full_hash_limit=1 << 30):
    """sha256 of a data file (of its size and first and last 64 MiB above 1 GiB, to keep large files quick)."""
    size = Path(path).stat().st_size
    if size <= full_hash_limit:
        return download.hash_of(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 26))
        handle.seek(-(1 << 26), os.SEEK_END)
        digest.update(handle.read())
    return "size+ends:" + digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Splits: the generic ones (datasets/splits.py) and each data set's own (DataSet.splits, DataSet.time_split).

def split_ratings(data, split="stratified", seed=SPLIT_SEED, time_window="full"):
    """The split's Split of the data, refused when too small to measure anything."""
    if len(data.ratings) < splits.MIN_TOTAL_RATINGS:
        raise DataError(f"{Path(data.data_dir, next(iter(data.files)))} holds {len(data.ratings):,} ratings: at "
                        f"least {splits.MIN_TOTAL_RATINGS} are needed for a meaningful run. Fix: use more ratings.")
    split, source = SPLIT_ALIASES.get(split, split), DATASETS[data.dataset]
    if split in source.splits:
        parts = source.splits[split](data, seed)
    elif split == "time" and source.time_split:
        parts = source.time_split(data, seed, time_window)
    elif split in splits.SPLITS:
        parts = splits.generic_split(data, split, seed)
    else:
        owner = next((name for name, other in DATASETS.items() if split in other.splits), None)
        raise DataError(f"--split {split} is " + (f"one of {DATASETS[owner].splits_name}" if owner else "no split")
                        + f", but the data set is {data.dataset}. Fix: " + (f"add --dataset {owner}, or " if owner
                                                                           else "") + f"use --split "
                        f"{', '.join(splits.SPLITS + list(source.splits))}.")
    splits.check_split_sizes(data, parts, split)
    return parts


# ----------------------------------------------------------------------------------------------------------------
# Matrices.

def triples(data, part, orientation="user"):
    """(rows, cols, ratings) of one part of the split; rows are users or items depending on `orientation`."""
    users, items = data.users[part], data.items[part]
    rows, cols = (users, items) if orientation == "user" else (items, users)
    return rows, cols, data.ratings[part]

def matrix_shape(data, orientation="user"):
    return (data.n_users, data.n_items) if orientation == "user" else (data.n_items, data.n_users)

def sparse_rating_matrix(rows, cols, ratings, shape):
    """The rating matrix in CSR form (0 for unknown): a rating matrix is a few percent dense, so this is tens of
    times smaller than the dense one."""
    import scipy.sparse

    return scipy.sparse.csr_matrix((ratings.astype(np.float32), (rows, cols)), shape=shape)

def fill_unknown(matrix, fill):
    """The seed's input preprocessing: unknown entries (0) of the *input* matrix become a constant or the row's mean
    rating. 'zero' leaves them at 0. Targets are never filled, so the loss still sees only real ratings."""
    if fill == "zero":
        return matrix
    known = matrix > 0
    if fill == "mean":
        row_means = matrix.sum(axis=1) / np.maximum(known.sum(axis=1), 1)
        return np.where(known, matrix, row_means[:, None]).astype(np.float32)
    return np.where(known, matrix, np.float32(fill)).astype(np.float32)
