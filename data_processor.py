"""Rating data sets: find or download, parse and validate, index densely, split, build sparse rating matrices.

The data flows top to bottom through this file, and `prepare_data` is the one chain that every script uses:
    ensure_dataset -> load_dataset -> split_ratings -> sparse_rating_matrix

Ratings are kept as aligned NumPy arrays (dense user index, dense item index, rating, timestamp). Users and items
are numbered densely from the ids that occur (`user_ids[k]` is the original id of user k), so that a MovieID of
10^9 costs nothing; results and recommendations speak in the original ids. A row of a matrix is a user (the
paper's orientation) or an item (I-AutoRec's).
"""

import csv
import dataclasses
import hashlib
import io
import os
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse

PROJECT_DIR = Path(__file__).resolve().parent
DATA_DIR = PROJECT_DIR / "data"  # a data set lives in DATA_DIR/<its folder> unless --data-dir says otherwise
GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
# Each data set: where it comes from, how it is verified, the file that marks it present, its rating scale.
# GroupLens publishes an MD5 file next to each zip (url + ".md5"); ML-1M's SHA-256 and ML-100K's MD5 are known here.
DATASETS = {
    "ml-100k": dict(url=GROUPLENS + "ml-100k.zip", md5="0e33842e24a9c977be4e0107933c0723", folder="ml-100k",
                    ratings_file="u.data", scale=(1.0, 5.0, 1.0)),
    "ml-1m": dict(url=GROUPLENS + "ml-1m.zip",
                  sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", folder="ml-1m",
                  ratings_file="ratings.dat", scale=(1.0, 5.0, 1.0)),
    "ml-10m": dict(url=GROUPLENS + "ml-10m.zip", folder="ml-10M100K", ratings_file="ratings.dat",
                   scale=(0.5, 5.0, 0.5)),
    "ml-20m": dict(url=GROUPLENS + "ml-20m.zip", folder="ml-20m", ratings_file="ratings.csv", scale=(0.5, 5.0, 0.5)),
    "netflix": dict(url=None, folder="netflix", ratings_file=None, scale=(1.0, 5.0, 1.0)),
}
NETFLIX_HELP = (
    "The Netflix Prize data cannot be downloaded by this program (its license). Get it from the Netflix Prize "
    "archive or its repackaging (the Kaggle data set 'netflix-prize-data'), unpack it and point --data-dir at the "
    "folder that holds either the original training_set/mv_*.txt files or the four combined_data_*.txt files, plus "
    "movie_titles.csv. Each block of those files is a 'MovieID:' line followed by 'CustomerID,Rating,YYYY-MM-DD' "
    "lines.")

SPLITS = ["stratified", "random", "u1", "u2", "u3", "u4", "u5", "ua", "ub", "time"]
SPLIT_ALIASES = {"seed": "stratified"}  # earlier names of splits, still accepted
SPLIT_SEED = 1994
TEST_FRACTION = 0.1  # of all ratings, in the seed and random splits
VAL_FRACTION = 0.1  # stratified split: of the ratings left after the test split (81/9/10 overall)
RANDOM_VAL_FRACTION = 0.05  # random, u1-u5/ua/ub splits: validation ratings drawn from the training part
STRATIFIED_MIN_USER_RATINGS = 3  # stratified split: users with fewer ratings stay wholly in training (not stratifiable)
TIME_WINDOWS = {  # the paper's Netflix windows: (train from, train to, test from, test to), inclusive dates
    "full": ("1999-12-01", "2005-11-30", "2005-12-01", "2005-12-31"),
    "3m": ("2005-09-01", "2005-11-30", "2005-12-01", "2005-12-31"),
    "6m": ("2005-06-01", "2005-11-30", "2005-12-01", "2005-12-31"),
    "1y": ("2004-06-01", "2005-05-31", "2005-06-01", "2005-06-30"),
}
TIME_TEST_FRACTION = 0.1  # MovieLens time split: the last 10% of the time range is the test window
MIN_TOTAL_RATINGS = 100  # below these a run measures nothing meaningful
MIN_RATINGS = {"train": 50, "val": 5, "test": 5}


class DataError(Exception):
    """A problem with the data that the user can fix; the message says what and how."""


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
class Split:
    """Sorted, disjoint index arrays into a Ratings' arrays."""
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclasses.dataclass
class Prepared:
    """What a run reads: the data, its split, and the sparse train and validation matrices (rows are users or
    items, by `orientation`) of shape `shape`."""
    data: Ratings
    split: Split
    orientation: str
    shape: tuple
    train: scipy.sparse.csr_matrix
    val: scipy.sparse.csr_matrix


# ----------------------------------------------------------------------------------------------------------------
# The one data chain: flags -> split rating matrices.

def prepare_data(dataset, data_dir, split, split_seed, orientation, time_window="full", data=None,
                 csv_format=None):
    """Load (unless `data` is given), split and build the matrices the network reads."""
    if data is None:
        data = load_data(dataset, data_dir, csv_format)
    parts = split_ratings(data, split, split_seed, time_window)
    print(f"Split {split} (split seed {split_seed}): train/val/test {len(parts.train):,}/{len(parts.val):,}/"
          f"{len(parts.test):,} ratings")
    shape = matrix_shape(data, orientation)
    return Prepared(data, parts, orientation, shape, *(sparse_rating_matrix(*triples(data, part, orientation), shape)
                                                        for part in (parts.train, parts.val)))


def prepare_run_data(config, data=None):
    """prepare_data with a run's configuration (main.py's constants in lower case, as config.json records them)."""
    return prepare_data(config["dataset"], config["data_dir"], config["split"], config["split_seed"],
                        config["orientation"], config["time_window"], data, CsvFormat.of(config))


def load_run_data(config):
    """load_data with a run's configuration."""
    return load_data(config["dataset"], config["data_dir"], CsvFormat.of(config))


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
    fix = "Fix: point the program at the data that run was trained on, or train a new model on this one."
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


def load_data(dataset, data_dir=None, csv_format=None):
    """Find (or download) the data set and load it; --dataset csv reads the file that `csv_format` describes."""
    if dataset == "csv":
        return load_csv(csv_format)
    return load_dataset(dataset, ensure_dataset(dataset, resolve_data_dir(dataset, data_dir)))


def resolve_data_dir(dataset, flag_value=None):
    """--data-dir wins; for ml-1m the environment variable MOVIELENS_DIR comes next; then DATA_DIR/<folder>."""
    from_environment = os.environ.get("MOVIELENS_DIR") if dataset == "ml-1m" else None
    return Path(flag_value or from_environment or DATA_DIR / DATASETS[dataset]["folder"]).expanduser()


# ----------------------------------------------------------------------------------------------------------------
# Finding and downloading.

def ensure_dataset(dataset, data_dir):
    """Return data_dir once it holds the data set, downloading and unpacking it (verified) if it does not."""
    data_dir = Path(data_dir)
    info = DATASETS[dataset]
    if dataset == "netflix":
        if not netflix_files(data_dir):
            raise DataError(f"No Netflix Prize ratings in {data_dir} (neither training_set/mv_*.txt nor "
                            f"combined_data_*.txt). {NETFLIX_HELP}")
        return data_dir
    ratings_path = data_dir / info["ratings_file"]
    if ratings_path.exists():
        return data_dir  # a folder or an unreadable file in its place is reported by the parser, not downloaded over
    print(f"{dataset} not found in {data_dir} (no {info['ratings_file']}); downloading {info['url']}")
    import keras  # imported here: parsing and splitting do not need it

    download_dir = data_dir.parent
    zip_path = download_dir / Path(info["url"]).name
    expected = info.get("sha256") or info.get("md5")
    try:
        download_dir.mkdir(parents=True, exist_ok=True)
        expected = expected or published_md5(info["url"], download_dir)
        # get_file shows progress, deletes a partial download and refuses a file whose hash differs.
        keras.utils.get_file(fname=zip_path.name, origin=info["url"], file_hash=expected,
                             cache_dir=str(download_dir), cache_subdir=".")
        unpack_dataset(zip_path, info["folder"], data_dir)
    except Exception as error:  # offline, HTTP error, checksum mismatch, unwritable folder, bad zip
        if expected and zip_path.is_file() and hash_of(zip_path, len(expected)) != expected:
            zip_path.unlink()  # never keep a corrupt or foreign file under the name of the real one
        raise DataError(
            f"{dataset} is not in {data_dir} (no {info['ratings_file']} there) and could not be downloaded "
            f"from {info['url']}: {error}\n"
            f"Fix: download and unzip {zip_path.name} yourself and point the program at the folder that holds "
            f"{info['ratings_file']} with --data-dir PATH"
            + (" or the environment variable MOVIELENS_DIR." if dataset == "ml-1m" else ".")) from None
    return data_dir


def published_md5(url, download_dir):
    """The MD5 that GroupLens publishes next to a zip (url + '.md5', a line 'MD5 (name) = hash' or 'hash name')."""
    import keras

    path = keras.utils.get_file(fname=Path(url).name + ".md5", origin=url + ".md5", cache_dir=str(download_dir),
                                cache_subdir=".")
    words = [word for word in Path(path).read_text().split() if len(word) == 32]
    if not words:
        raise ValueError(f"{path} holds no MD5 hash")
    return words[0]


def unpack_dataset(zip_path, zip_folder, data_dir):
    """Unpack the zip's folder into data_dir through a temporary folder, so a failure leaves nothing half-done;
    the ratings file moves last, as it marks the data set present."""
    staging = Path(tempfile.mkdtemp(dir=data_dir.parent, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(staging)
        source = staging / zip_folder
        data_dir.mkdir(parents=True, exist_ok=True)
        names = sorted(path.name for path in source.iterdir() if path.is_file())
        for name in sorted(names, key=lambda name: name.startswith(("ratings", "u.data"))):
            os.replace(source / name, data_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def hash_of(path, hex_length=64):
    """The file's SHA-256 (hex_length 64) or MD5 (hex_length 32), as keras.utils.get_file checks them."""
    digest = hashlib.sha256() if hex_length == 64 else hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Reading files: every way a file can be unusable is named with the file, the line and the fix.

def read_bytes(path, source_hint):
    """The file's bytes, refused with a clear message if it is a folder, unreadable, empty or not text. A UTF-8
    byte-order mark is dropped and blank lines at the end are allowed."""
    path = Path(path)
    fix = f"Fix: {source_hint}"
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file. {fix}")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path} cannot be read ({error.strerror}). Fix: make it readable (chmod a+r), or "
                        f"{source_hint[0].lower() + source_hint[1:]}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise DataError(f"{path} contains NUL bytes: it is not latin-1 text (UTF-16?). Fix: re-save it as latin-1 "
                        f"or UTF-8, or {source_hint[0].lower() + source_hint[1:]}")
    raw = raw.rstrip(b"\r\n\t ")
    if not raw:
        raise DataError(f"{path} is empty. {fix}")
    return raw + b"\n"


def line_text(raw, line_number):
    """The text of one line (1-based) of a file's bytes, for error messages."""
    start = 0
    for _ in range(line_number - 1):
        start = raw.index(b"\n", start) + 1
    end = raw.find(b"\n", start)
    return raw[start:end if end >= 0 else None].decode("latin-1").rstrip("\r")


def bad_line(path, raw, line_number, problem, source_hint):
    raise DataError(f"{path}, line {line_number}: {problem}: {line_text(raw, line_number)!r}. Fix: correct or "
                    f"delete that line, or {source_hint[0].lower() + source_hint[1:]}")


def check_field_counts(path, original, raw, sep, fewest, most, names, source_hint, first_line=1,
                       line_of=lambda line: line, chunk_bytes=1 << 25):
    """Every line of `raw` (from `first_line`) must have between `fewest` and `most` `sep`-separated fields.
    Checked on the bytes, in chunks, before any column is interpreted, so that nothing can shift silently; an
    error quotes the line of `original` (the file before '::' became `sep`), line_of(n) being the line of
    `original` that is line n of `raw`."""
    array = np.frombuffer(raw, dtype=np.uint8)
    start, line_offset = 0, 0
    while start < len(array):
        end = min(start + chunk_bytes, len(array))
        end = raw.index(b"\n", end - 1) + 1  # the chunk ends with a whole line (raw ends with a newline)
        chunk = array[start:end]
        line_ends = np.flatnonzero(chunk == 10)
        separators = np.flatnonzero(chunk == ord(sep))
        counts = np.bincount(np.searchsorted(line_ends, separators), minlength=len(line_ends)) + 1
        lengths = np.diff(line_ends, prepend=-1) - 1
        blank = (lengths == 0) | ((lengths == 1) & (chunk[np.maximum(line_ends - 1, 0)] == 13))
        bad = (counts < fewest) | (counts > most) | blank
        bad[: max(first_line - 1 - line_offset, 0)] = False
        if bad.any():
            index = int(np.argmax(bad))
            line_number = line_of(line_offset + index + 1)
            if blank[index]:
                bad_line(path, original, line_number, "a blank line", source_hint)
            expected = f"{fewest}" if fewest == most else f"{fewest} or {most}"
            bad_line(path, original, line_number, f"{counts[index]} fields where {expected} ({'|'.join(names)}) are "
                     f"expected, separated by {sep!r}", source_hint)
        line_offset += len(line_ends)
        start = end


def read_numeric_table(path, sep, names, dtypes, source_hint, optional=0, header=False, replace=None):
    """A separator-delimited file of numbers as (DataFrame with the given dtypes, the file's bytes as parsed), one
    row per line after the header line. Field counts are checked on every line first; a value that is not a number
    names its line. `replace` (e.g. '::') is turned into `sep` first, so pandas' fast C parser can read it."""
    original = raw = read_bytes(path, source_hint)  # messages quote the original text of a line
    if replace:
        if sep.encode() in raw:
            line_number = raw[: raw.index(sep.encode())].count(b"\n") + 1
            bad_line(path, raw, line_number, f"a {sep!r} character (fields are separated by {replace!r})",
                     source_hint)
        raw = raw.replace(replace.encode(), sep.encode())
    check_field_counts(path, original, raw, sep, len(names) - optional, len(names), names, source_hint,
                       first_line=2 if header else 1)
    options = dict(sep=sep, header=None, names=names, skiprows=1 if header else 0, quoting=csv.QUOTE_NONE,
                   encoding="latin-1", index_col=False)
    try:
        return pd.read_csv(io.BytesIO(raw), dtype=dtypes, **options), original
    except (ValueError, OverflowError):  # a field that is not a number of its column's type: find the line
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, **options)
    for name, dtype in dtypes.items():
        text = frame[name].fillna("")
        values = pd.to_numeric(text.replace("", np.nan), errors="coerce").to_numpy(dtype=np.float64)
        integer = np.issubdtype(np.dtype(dtype), np.integer)
        may_be_missing = name in names[len(names) - optional:]
        too_large = integer & (np.abs(values) >= 2.0 ** 63)
        wrong = (np.isnan(values) & ~(may_be_missing & (text == "").to_numpy())) | too_large | (
            integer & ~np.isnan(values) & (values != np.round(values)))
        if wrong.any():
            row = int(np.argmax(wrong))
            problem = (f"{name} is too large (at most 2^63 - 1)" if too_large[row] else
                       f"{name} is not {'an integer' if integer else 'a number'}")
            bad_line(path, original, row + (2 if header else 1), problem, source_hint)
    raise DataError(f"{path} could not be parsed. Fix: {source_hint}")


def validate_ratings(path, raw, first_data_line, user_ids, item_ids, ratings, scale, names, source_hint):
    """Ids must be integers of 1 or more, ratings on the data set's scale (whole or half stars)."""
    low, high, step = scale
    finite = np.isfinite(ratings)  # pandas reads 'NA' and an empty field as NaN
    steps = np.where(finite, ratings, 0) / step
    off_scale = (ratings < low) | (ratings > high) | (np.abs(steps - np.round(steps)) > 1e-6) | ~finite
    on_scale = f"{low:g}-{high:g}" + (f" in steps of {step:g}" if step != 1 else "")
    for name, values, bad, allowed in [(names[0], user_ids, user_ids < 1, "1 or more"),
                                       (names[1], item_ids, item_ids < 1, "1 or more"),
                                       (names[2], ratings, off_scale, on_scale)]:
        if bad.any():
            row = int(np.argmax(bad))
            value = f"{values[row]:g}" if name == names[2] else str(values[row])
            problem = (f"{name} is missing or not a number" if name == names[2] and not np.isfinite(values[row])
                       else f"{name} {value} is not {allowed}")
            bad_line(path, raw, row + first_data_line, problem, source_hint)


# ----------------------------------------------------------------------------------------------------------------
# The formats, one reader each. Each returns (user ids, item ids, ratings, timestamps or None, {item id: title});
# load_dataset indexes them densely.

# How each MovieLens ratings file is laid out: the separator pandas reads (`replace`, the file's own separator, is
# turned into it first), a header line, and how many trailing fields may be missing (ML-1M's timestamps).
RATINGS_FORMATS = {"ml-100k": dict(sep="\t", replace=None, header=False, optional=0),
                   "ml-1m": dict(sep="\t", replace="::", header=False, optional=1),
                   "ml-10m": dict(sep="\t", replace="::", header=False, optional=0),
                   "ml-20m": dict(sep=",", replace=None, header=True, optional=0)}


def read_movielens_ratings(path, dataset):
    """(user ids, movie ids, ratings, timestamps or None) of a MovieLens ratings file, validated line by line."""
    sep, replace, header, optional = RATINGS_FORMATS[dataset].values()
    hint = f"replace it with the file from {DATASETS[dataset]['url']}"
    names = ["UserID", "MovieID", "Rating", "Timestamp"]
    dtypes = {"UserID": np.int64, "MovieID": np.int64, "Rating": np.float32, "Timestamp": np.float64}
    frame, raw = read_numeric_table(path, sep, names, dtypes, hint, optional=optional, header=header,
                                    replace=replace)
    users, items, ratings = (frame[name].to_numpy() for name in names[:3])
    validate_ratings(path, raw, 2 if header else 1, users, items, ratings, DATASETS[dataset]["scale"], names, hint)
    timestamps = frame["Timestamp"].to_numpy()
    missing = np.isnan(timestamps)
    if missing.any() and not missing.all():  # some lines have one: a line without is a mistake, not a layout
        bad_line(path, raw, int(np.argmax(missing)) + (2 if header else 1), "Timestamp is missing or not a number "
                 "(other lines have one)", hint)
    return users, items, ratings, None if missing.any() else timestamps.astype(np.int64)


def read_titles(path, dataset, sep, header=False, fields=None, maxsplit=-1, title_field=1):
    """{MovieID: title} from a movies file, or {} with a warning if it is missing (titles only label
    recommendations). sep 'csv' reads quoted CSV (ML-20M, commas inside titles); `maxsplit` keeps commas in
    Netflix's titles, which come last; `fields`, where given, is the exact number of fields of every line (the
    official u.item has a line with 25 fields instead of 24, so it is not checked there)."""
    path = Path(path)
    hint = (f"replace it with the file from {DATASETS[dataset]['url']}" if DATASETS[dataset]["url"]
            else "replace it with movie_titles.csv of the Netflix Prize data")
    if not path.exists():
        print(f"Warning: {path} not found; recommendations will show movie ids instead of titles.")
        return {}
    raw = read_bytes(path, hint)
    lines = raw.decode("latin-1").split("\n")[:-1]
    if sep == "csv":
        rows = list(csv.reader(lines))
    else:
        rows = [line.rstrip("\r").split(sep, maxsplit) for line in lines]
    titles = {}
    first = 1 if header else 0
    for number, row in enumerate(rows[first:], start=first + 1):
        if (fields and len(row) != fields) or len(row) <= title_field:
            bad_line(path, raw, number, f"{len(row)} fields where {fields or title_field + 1} are expected", hint)
        try:
            titles[int(row[0])] = row[title_field].strip()
        except ValueError:
            bad_line(path, raw, number, "MovieID is not an integer", hint)
    return titles


def read_ml100k(data_dir):
    users, items, ratings, timestamps = read_movielens_ratings(data_dir / "u.data", "ml-100k")
    return users, items, ratings, timestamps, read_titles(data_dir / "u.item", "ml-100k", "|")


def read_ml1m(data_dir):
    users, items, ratings, timestamps = read_movielens_ratings(data_dir / "ratings.dat", "ml-1m")
    check_ml1m_users(data_dir, users)
    return users, items, ratings, timestamps, read_titles(data_dir / "movies.dat", "ml-1m", "::", fields=3)


def read_ml10m(data_dir):
    users, items, ratings, timestamps = read_movielens_ratings(data_dir / "ratings.dat", "ml-10m")
    return users, items, ratings, timestamps, read_titles(data_dir / "movies.dat", "ml-10m", "::", fields=3)


def read_ml20m(data_dir):
    users, items, ratings, timestamps = read_movielens_ratings(data_dir / "ratings.csv", "ml-20m")
    titles = read_titles(data_dir / "movies.csv", "ml-20m", "csv", header=True, fields=3)
    return users, items, ratings, timestamps, titles


def check_ml1m_users(data_dir, user_ids):
    """users.dat is only validated (the model uses ratings alone): ids must be integers, and every rating's UserID
    must be in it."""
    path = data_dir / "users.dat"
    if not path.exists():
        print(f"Warning: {path} not found; skipping the check of user ids against it.")
        return
    hint = f"replace it with the file from {DATASETS['ml-1m']['url']}"
    names = ["UserID", "Gender", "Age", "Occupation", "Zip"]
    frame, _ = read_numeric_table(path, "\t", names, {"UserID": np.int64, "Age": np.int64, "Occupation": np.int64},
                                  hint, replace="::")
    unknown = np.setdiff1d(user_ids, frame["UserID"].to_numpy())
    if unknown.size:
        raise DataError(f"{data_dir / 'ratings.dat'} rates as UserID {unknown[0]}, which is not in {path}. "
                        f"Fix: use matching files from {DATASETS['ml-1m']['url']}.")


def netflix_files(data_dir):
    """The rating files of the Netflix Prize data in either layout, in a fixed order."""
    data_dir = Path(data_dir)
    combined = sorted(data_dir.glob("combined_data_*.txt"))
    return combined or sorted((data_dir / "training_set").glob("mv_*.txt"))


def read_netflix(data_dir, batch_bytes=1 << 29):
    """Blocks of a 'MovieID:' line followed by 'CustomerID,Rating,YYYY-MM-DD' lines. The header lines are cut out
    and the dates' dashes become commas, so pandas' C parser reads five integer columns; the movie of each line
    comes from counting the lines of its block. Files are read in batches of about `batch_bytes` to bound memory
    (one combined_data file, or some hundreds of mv_*.txt files, at a time)."""
    hint = "replace it with the original file of the Netflix Prize data"
    files = netflix_files(data_dir)
    names = ["CustomerID", "Rating", "Year", "Month", "Day"]
    dtypes = {"CustomerID": np.int32, "Rating": np.float32, "Year": np.int16, "Month": np.int8, "Day": np.int8}
    batches, size = [[]], 0
    for path in files:
        if batches[-1] and size + path.stat().st_size > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += path.stat().st_size
    users, items, ratings, days = [], [], [], []
    started = time.perf_counter()
    for number, batch in enumerate(batches, start=1):
        bodies, movies, counts = [], [], []
        for path in batch:
            body, file_movies, file_counts, _ = netflix_blocks(path, read_bytes(path, hint), hint)
            bodies.append(body)
            movies += file_movies
            counts += file_counts
        try:  # the fast path; whatever it cannot read (a stray '-', another date layout, 30 February) is named below
            frame = pd.read_csv(io.BytesIO(b"".join(bodies).replace(b"-", b",")), sep=",", header=None,
                                names=names, dtype=dtypes, quoting=csv.QUOTE_NONE, index_col=False, encoding="latin-1")
            days.append(pd.to_datetime(frame[["Year", "Month", "Day"]].rename(columns=str.lower)).to_numpy()
                        .astype("datetime64[s]").astype(np.int64))
        except (ValueError, OverflowError):
            netflix_bad_line(batch, hint)
        del bodies
        items.append(np.repeat(np.array(movies, dtype=np.int32), counts))
        users.append(frame["CustomerID"].to_numpy())
        ratings.append(frame["Rating"].to_numpy())
        if not netflix_values_valid(users[-1], ratings[-1]):
            netflix_bad_line(batch, hint)
        print(f"\rNetflix: read {sum(len(part) for part in ratings):,} ratings, file batch {number}/{len(batches)} "
              f"({time.perf_counter() - started:.0f} s)", end="", flush=True)
    print()
    users, items, ratings = np.concatenate(users), np.concatenate(items), np.concatenate(ratings)
    titles = read_titles(data_dir / "movie_titles.csv", "netflix", ",", maxsplit=2, title_field=2)
    return users, items, ratings, np.concatenate(days), titles


def netflix_values_valid(users, ratings):
    """Whether every rating is a whole star from 1 to 5 and every CustomerID 1 or more."""
    low, high, _ = DATASETS["netflix"]["scale"]
    return bool(((ratings >= low) & (ratings <= high) & (ratings == np.round(ratings)) & (users >= 1)).all())


def netflix_bad_line(paths, hint):
    """Raise the error naming the first line of these files that is not 'CustomerID,Rating,YYYY-MM-DD' with a
    CustomerID from 1, a rating from 1 to 5 and a real date (read the slow way, as text, only once the fast parser
    has failed or read a value out of range)."""
    for path in paths:
        raw = read_bytes(path, hint)
        body, _, _, line_of = netflix_blocks(path, raw, hint)
        frame = pd.read_csv(io.BytesIO(body), sep=",", header=None, names=["CustomerID", "Rating", "Date"],
                            dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, index_col=False,
                            encoding="latin-1")
        checks = [("CustomerID is not a whole number from 1", frame["CustomerID"].str.fullmatch(r"0*[1-9]\d{0,8}")),
                  ("Rating is not a whole star from 1 to 5", frame["Rating"].str.fullmatch(r"[1-5](\.0*)?")),
                  ("the date is not a real date written YYYY-MM-DD", frame["Date"].str.fullmatch(r"\d{4}-\d\d-\d\d")
                   & pd.to_datetime(frame["Date"], format="%Y-%m-%d", errors="coerce").notna())]
        for problem, good in checks:
            if not good.all():
                bad_line(path, raw, line_of(int(np.argmin(good.to_numpy())) + 1), problem, hint)
    raise DataError(f"the Netflix files {', '.join(str(path) for path in paths)} could not be parsed. Fix: {hint}.")


def netflix_blocks(path, raw, hint):
    """One Netflix file without its 'MovieID:' lines: (the rating lines, the movie of each block, the number of
    lines of each block). Every rating line is checked for its three fields, an error naming the file's line."""
    headers = find_all(raw, b":")
    if not headers or not raw[: headers[0]].isdigit():
        bad_line(path, raw, 1, "the file does not start with a 'MovieID:' line", hint)
    pieces, movies, counts = [], [], []
    for position, header in enumerate(headers):
        line_start = raw.rfind(b"\n", 0, header) + 1
        movie = raw[line_start:header]
        if not movie.isdigit() or raw[header + 1:header + 2] not in (b"\n", b"\r"):
            bad_line(path, raw, raw[:header].count(b"\n") + 1, "a ':' outside a 'MovieID:' line", hint)
        block_start = raw.index(b"\n", header) + 1
        block_end = raw.rfind(b"\n", 0, headers[position + 1]) + 1 if position + 1 < len(headers) else len(raw)
        pieces.append(raw[block_start:block_end])
        movies.append(int(movie))
        counts.append(pieces[-1].count(b"\n"))
    body = b"".join(pieces)
    block_ends = np.cumsum(counts)

    def line_of(body_line):  # each block's lines follow its header line and all earlier blocks and headers
        return body_line + int(np.searchsorted(block_ends, body_line)) + 1

    check_field_counts(path, raw, body, ",", 3, 3, ["CustomerID", "Rating", "Date"], hint, line_of=line_of)
    named = re.fullmatch(r"mv_0*(\d+)\.txt", path.name)
    if named and movies != [int(named.group(1))]:  # training_set/mv_<MovieID>.txt holds that movie alone
        wrong = next(index for index, movie in enumerate(movies) if movie != int(named.group(1)))
        bad_line(path, raw, raw[:headers[wrong]].count(b"\n") + 1, f"MovieID {movies[wrong]} in the file of MovieID "
                 f"{named.group(1)} (its name)", hint)
    return body, movies, counts, line_of


def find_all(raw, byte):
    """Positions of every occurrence of one byte."""
    return np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == byte[0]).tolist()


# ----------------------------------------------------------------------------------------------------------------
# Your own ratings (--dataset csv): one rating per line (user, item, rating and optionally a time); ids may be any
# text (u-17, ISBNs, e-mail hashes) and are kept as text.

@dataclasses.dataclass
class CsvFormat:
    """How a ratings file of one's own is laid out (main.py's RATINGS_FILE ... TITLES_FILE)."""
    ratings_file: str
    columns: str = ""  # user,item,rating[,timestamp] by header name or position from 1; '': the first fields
    separator: str = "auto"  # 'auto': the first of AUTO_SEPARATORS in the first line
    header: str = "auto"  # 'yes', 'no', or 'auto': a first line whose rating field is not a number is a header
    rating_scale: list | None = None  # [low, high] (whole steps) or [low, high, step] (0: any value); None: inferred
    titles_file: str | None = None  # optional: item id and title per line, same separator

    @classmethod
    def of(cls, config):
        """The layout a configuration names (None for the built-in data sets)."""
        if config.get("dataset") != "csv":
            return None
        return cls(*(config[field.name] for field in dataclasses.fields(cls)))


AUTO_SEPARATORS = ["::", "\t", ",", ";", "|", " "]
CSV_ROLES = ["user", "item", "rating", "timestamp"]
CSV_HINT = "describe the file's layout with --columns, --separator, --header and --rating-scale (main.py --help)"


def read_csv_ratings(form):
    """(user ids, item ids, ratings, timestamps or None, titles, scale, header lines) of a ratings file of one's
    own, every line validated (file, line, text, fix)."""
    path = Path(form.ratings_file).expanduser()
    if not path.exists():
        raise DataError(f"{path} not found. Fix: give your ratings file with --ratings-file PATH (or RATINGS_FILE "
                        f"in main.py).")
    original = read_bytes(path, CSV_HINT)
    encoding = "utf-8" if is_utf8(original) else "latin-1"
    first_line = original[: original.index(b"\n")].decode(encoding).rstrip("\r")
    separator = detect_separator(path, first_line) if form.separator == "auto" else form.separator
    raw, sep = (original.replace(b"::", b"\x1f"), "\x1f") if separator == "::" else (original, separator)
    header_fields = [field.strip().strip('"') for field in first_line.split(separator)]
    positions = csv_positions(path, form.columns, header_fields)
    header = csv_header(form.header, form.columns, header_fields, positions[2])
    if b'"' not in raw:  # quoted fields may hold the separator: pandas checks those files' field counts instead
        check_field_counts(path, original, raw, sep, len(header_fields), len(header_fields),
                           [CSV_ROLES[positions.index(n)] if n in positions else "unused" for n in
                            range(len(header_fields))], CSV_HINT, first_line=2 if header else 1)
    frame = parse_csv(path, original, raw, sep, positions, header, encoding)
    columns = [frame[position].fillna("").to_numpy() for position in positions]
    columns[:2] = [ids.astype(str) for ids in columns[:2]]

    def bad(row, problem):
        bad_line(path, original, row + (2 if header else 1), problem, CSV_HINT)

    ratings, scale = csv_rating_values(columns[2], form.rating_scale, bad)
    for role, ids in zip(CSV_ROLES, columns[:2]):
        if (ids == "").any():
            bad(int(np.argmax(ids == "")), f"the {role} id is missing")
    timestamps = csv_timestamps(columns[3], bad) if len(columns) == 4 else None
    titles = read_csv_titles(form.titles_file, separator, encoding) if form.titles_file else {}
    return columns[0], columns[1], ratings, timestamps, titles, scale, 1 if header else 0


def parse_csv(path, original, raw, sep, positions, header, encoding):
    """The chosen columns as text (the rating column as numbers where every rating is one); an error pandas finds
    in a quoted file names its line."""
    options = dict(sep=sep, header=None, skiprows=1 if header else 0, usecols=positions, keep_default_na=False,
                   skip_blank_lines=False, skipinitialspace=True, encoding=encoding, index_col=False)
    try:  # ratings read as numbers at once; a value that is not one is found later, on the text
        return pd.read_csv(io.BytesIO(raw), dtype={**{position: str for position in positions},
                                                   positions[2]: np.float64}, **options)
    except ValueError:
        pass
    try:
        return pd.read_csv(io.BytesIO(raw), dtype=str, **options)
    except (pd.errors.ParserError, ValueError) as error:  # pandas counts "in line" from 1, "at row" from 0
        where = re.search(r"(in line|at row) (\d+)", str(error))
        if where:
            problem = str(error).split("C error: ")[-1].strip().rstrip(".")
            bad_line(path, original, int(where.group(2)) + (where.group(1) == "at row"), problem, CSV_HINT)
        raise DataError(f"{path} could not be read with separator {sep!r}: {error}. Fix: {CSV_HINT}.") from None


def is_utf8(raw):
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def detect_separator(path, first_line):
    for separator in AUTO_SEPARATORS:
        if separator in first_line:
            return separator
    raise DataError(f"{path}, line 1: no separator found ({', '.join(map(repr, AUTO_SEPARATORS))}): "
                    f"{first_line!r}. Fix: give it with --separator.")


def csv_positions(path, columns, header_fields):
    """The 0-based positions of the user, item, rating (and timestamp) fields."""
    if not columns:
        return list(range(min(len(header_fields), 4)))
    names = [name.strip() for name in str(columns).split(",")]
    if not 3 <= len(names) <= 4:
        raise DataError(f"--columns {columns!r} names {len(names)} columns. Fix: name the user, item and rating "
                        f"columns (and a timestamp column), e.g. --columns userId,movieId,rating,timestamp or 1,2,3.")
    if all(name.isdigit() for name in names):
        positions = [int(name) - 1 for name in names]
        wrong = [name for name, position in zip(names, positions) if not 0 <= position < len(header_fields)]
        if wrong:
            raise DataError(f"--columns {columns!r}: line 1 of {path} has {len(header_fields)} fields, no field "
                            f"{wrong[0]}. Fix: count the fields from 1.")
        return positions
    missing = [name for name in names if name not in header_fields]
    if missing:
        raise DataError(f"--columns {columns!r}: {path} has no column {missing[0]!r} in its header line (it has "
                        f"{', '.join(map(repr, header_fields))}). Fix: use those names, or positions from 1.")
    return [header_fields.index(name) for name in names]


def csv_header(setting, columns, header_fields, rating_position):
    """Whether line 1 is a header: --header yes/no, or (auto) if columns are named or its rating is not a number."""
    if setting != "auto":
        return setting == "yes"
    named = bool(columns) and not all(name.strip().isdigit() for name in str(columns).split(","))
    return named or pd.isna(pd.to_numeric(header_fields[rating_position], errors="coerce"))


def csv_rating_values(text, rating_scale, bad):
    """The ratings as float32 and the scale (given, or inferred and printed); a value that is not a number or off
    the scale names its line."""
    values = (text if text.dtype.kind == "f" else pd.to_numeric(pd.Series(text), errors="coerce")
              .to_numpy(dtype=np.float64))
    not_number = ~np.isfinite(values)
    if not_number.any():
        row = int(np.argmax(not_number))
        bad(row, f"rating {str(text[row])!r} is not a number" if text[row] else "the rating is missing")
    if rating_scale:
        low, high, step = (list(rating_scale) + [1.0])[:3]  # low,high: whole steps
    else:
        low, high = float(values.min()), float(values.max())
        step = next((step for step in (1.0, 0.5) if np.allclose(values / step, np.round(values / step))), 0.0)
        print(f"Rating scale inferred from the ratings: {scale_text((low, high, step))} (--rating-scale sets it)")
    off = (values < low) | (values > high)
    if step:
        off |= np.abs(values / step - np.round(values / step)) > 1e-6
    if off.any():
        row = int(np.argmax(off))
        bad(row, f"rating {values[row]:g} is off the scale {scale_text((low, high, step))} (--rating-scale)")
    return values.astype(np.float32), (float(low), float(high), float(step))


def scale_text(scale):
    low, high, step = scale
    return f"{low:g}-{high:g}" + (f" in steps of {step:g}" if step else " (any value)")


def csv_timestamps(text, bad):
    """Seconds since 1970 from numbers (seconds) or ISO 8601 dates and times; line 1's kind decides for all."""
    if not np.isnan(pd.to_numeric(text[:1], errors="coerce")[0]):
        numbers = pd.to_numeric(pd.Series(text), errors="coerce")
        wrong = numbers.isna().to_numpy()
        kind = "a number of seconds, as on the first line"
        seconds = numbers.to_numpy()
    else:
        dates = pd.to_datetime(pd.Series(text), format="ISO8601", errors="coerce", utc=True)
        wrong = dates.isna().to_numpy()
        kind = "an ISO date such as 2024-05-17 or 2024-05-17T09:30:00, as on the first line"
        seconds = (dates.dt.tz_localize(None).to_numpy().astype("datetime64[s]").astype(np.int64)
                   if not wrong.any() else None)
    if wrong.any():
        row = int(np.argmax(wrong))
        bad(row, f"timestamp {str(text[row])!r} is not {kind}" if text[row] else "the timestamp is missing")
    return np.asarray(seconds, dtype=np.float64).round().astype(np.int64)


def read_csv_titles(path, separator, encoding):
    """{item id: title} from lines 'item id<separator>title' (quotes allowed); lines whose id is not an item of
    the ratings (a header line among them) are ignored."""
    path = Path(path).expanduser()
    hint = "give a file of 'item id, title' lines with --titles-file, or leave it out"
    raw = read_bytes(path, hint)
    lines = raw.decode("utf-8" if is_utf8(raw) else "latin-1").split("\n")[:-1]
    rows = (csv.reader(lines, delimiter=separator) if len(separator) == 1
            else (line.rstrip("\r").split(separator, 1) for line in lines))
    titles = {}
    for number, row in enumerate(rows, start=1):
        if len(row) < 2:
            bad_line(path, raw, number, f"{len(row)} field where 2 (item id, title) are expected, separated by "
                                        f"{separator!r}", hint)
        titles[row[0].strip()] = separator.join(row[1:]).strip()
    return titles


READERS = {"ml-100k": read_ml100k, "ml-1m": read_ml1m, "ml-10m": read_ml10m, "ml-20m": read_ml20m,
           "netflix": read_netflix}


def load_dataset(dataset, data_dir):
    """Parse and validate a data set into Ratings, ids numbered densely."""
    data_dir = Path(data_dir).resolve()
    started = time.perf_counter()
    *columns, titles = READERS[dataset](data_dir)
    ratings_file = DATASETS[dataset]["ratings_file"]
    files = [data_dir / ratings_file] if ratings_file else netflix_files(data_dir)
    lines = None if dataset == "netflix" else (files[0], 2 if dataset == "ml-20m" else 1,
                                               f"replace it with the file from {DATASETS[dataset]['url']}")
    return index_ratings(dataset, data_dir, files, lines, columns, titles, DATASETS[dataset]["scale"], started)


def load_csv(form):
    """Parse and validate a ratings file of one's own (--dataset csv) into Ratings."""
    started = time.perf_counter()
    path = Path(form.ratings_file).expanduser().resolve()
    *columns, titles, scale, header_lines = read_csv_ratings(form)
    files = [path] + ([Path(form.titles_file).expanduser().resolve()] if form.titles_file else [])
    return index_ratings("csv", path.parent, files, (path, header_lines + 1, CSV_HINT), columns, titles, scale,
                         started)


def index_ratings(dataset, data_dir, files, lines, columns, titles, scale, started):
    """Ratings from the readers' arrays: users and items numbered densely, a repeated (user, item) pair refused
    (naming its two lines: `lines` is (file, line of the first rating, fix), None for Netflix' many files)."""
    user_ids, item_ids, ratings, timestamps = columns
    user_ids_sorted, users = dense_index(user_ids)
    item_ids_sorted, items = dense_index(item_ids)
    pairs = users.astype(np.int64) * len(item_ids_sorted) + items
    order = np.argsort(pairs, kind="stable")  # the canonical order: by user id, then item id
    pairs = pairs[order]
    if (pairs[1:] == pairs[:-1]).any():  # a repeated pair: name its two lines
        repeated = np.flatnonzero(pairs[1:] == pairs[:-1])
        first, second = sorted((int(order[repeated[0]]), int(order[repeated[0] + 1])))
        if lines is None:
            raise DataError(f"Netflix data in {data_dir}: CustomerID {user_ids[first]} rated MovieID "
                            f"{item_ids[first]} twice. Fix: delete one of the two ratings, or use the original files.")
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
                   {position[item]: title for item, title in titles.items() if item in position}, scale, dataset,
                   str(data_dir), {str(path.relative_to(data_dir)) if path.is_relative_to(data_dir) else str(path):
                                   file_fingerprint(path) for path in files})
    print(f"Data: {len(ratings):,} ratings of {data.n_users:,} users and {data.n_items:,} items from "
          f"{data_dir} ({time.perf_counter() - started:.1f} s)")
    return data


def dense_index(ids):
    """(the distinct ids sorted, each rating's index among them as int32), as np.unique(return_inverse=True) gives
    them, text ids that are all whole numbers in numeric order; integer ids through pandas' hash table, which needs
    a third of np.unique's memory (it sorts no copy)."""
    if ids.dtype.kind in "iu":
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
        return hash_of(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 26))
        handle.seek(-(1 << 26), os.SEEK_END)
        digest.update(handle.read())
    return "size+ends:" + digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Splits. Each returns a Split: sorted, disjoint index arrays into the rating arrays.

def split_ratings(data, split="stratified", seed=SPLIT_SEED, time_window="full"):
    if len(data.ratings) < MIN_TOTAL_RATINGS:
        raise DataError(f"{data.data_dir} holds {len(data.ratings):,} ratings: at least {MIN_TOTAL_RATINGS} "
                        f"are needed for a meaningful run. Fix: use a larger data set.")
    split = SPLIT_ALIASES.get(split, split)
    if split == "stratified":
        parts = stratified_split(data, seed)
    elif split == "random":
        parts = random_split(data, seed)
    elif split == "time":
        parts = time_split(data, seed, time_window)
    else:
        parts = official_split(data, split, seed)
    check_split_sizes(data, parts, split)
    return parts


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


def official_split(data, split, seed):
    """ML-100K's official splits: u1-u5 (5-fold) and ua/ub (10 ratings per user for test) as GroupLens ships them;
    validation ratings are RANDOM_VAL_FRACTION of the .base file's, drawn with the split seed."""
    if data.dataset != "ml-100k":
        raise DataError(f"--split {split} is one of ML-100K's official splits, but the data set is "
                        f"{data.dataset}. Fix: add --dataset ml-100k, or use --split stratified, random or time.")
    data_dir = Path(data.data_dir)
    hint = f"replace it with the file from {DATASETS['ml-100k']['url']}"
    pair_of_rating = data.users.astype(np.int64) * data.n_items + data.items
    order = np.argsort(pair_of_rating)
    parts = {}
    for part, suffix in (("base", "base"), ("test", "test")):
        path = data_dir / f"{split}.{suffix}"
        if not path.exists():
            raise DataError(f"{path} not found: --split {split} needs ML-100K's official split files. "
                            f"Fix: {hint}.")
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
            raise DataError(f"{path}, line {line_number}: a rating that is not in u.data. Fix: {hint}.")
        parts[part] = np.sort(order[position])  # the canonical order, not the file's
    return random_split(data, seed, candidates=parts["base"], test=parts["test"])


def time_split(data, seed, time_window):
    """The paper's protocol: train on a time window, test on the window after it. Netflix: the paper's windows
    (TIME_WINDOWS); MovieLens: the last TIME_TEST_FRACTION of the time range is the test window, all before it
    trains. Test-window ratings of users or items unseen in training are dropped; the rest are split half and half
    into validation and test with the split seed."""
    timestamps = data.timestamps
    if timestamps is None:
        raise DataError(f"--split time needs timestamps, but the ratings in {data.data_dir} have none. Fix: use "
                        f"a ratings file with timestamps, or --split stratified or random.")
    if data.dataset == "netflix":
        day = 86400
        train_from, train_to, test_from, test_to = (np.datetime64(date, "s").astype(np.int64)
                                                    for date in TIME_WINDOWS[time_window])
        in_train = (timestamps >= train_from) & (timestamps < train_to + day)
        in_test_window = (timestamps >= test_from) & (timestamps < test_to + day)
    else:
        first, last = int(timestamps.min()), int(timestamps.max())
        test_from = last - TIME_TEST_FRACTION * (last - first)
        in_train, in_test_window = timestamps < test_from, timestamps >= test_from
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


# ----------------------------------------------------------------------------------------------------------------
# Matrices.

def triples(data, part, orientation="user"):
    """(rows, cols, ratings) of one part of the split; rows are users or items depending on `orientation`."""
    users, items = data.users[part], data.items[part]
    rows, cols = (users, items) if orientation == "user" else (items, users)
    return rows, cols, data.ratings[part]


def matrix_shape(data, orientation="user"):
    return (data.n_users, data.n_items) if orientation == "user" else (data.n_items, data.n_users)


def rating_matrix(rows, cols, ratings, shape):
    """Dense float32 matrix with the ratings at (row, col) and 0 for unknown (the dense training path only)."""
    matrix = np.zeros(shape, dtype=np.float32)
    matrix[rows, cols] = ratings
    return matrix


def sparse_rating_matrix(rows, cols, ratings, shape):
    """The same matrix in CSR form: ML-1M is 4.5% dense, so about 20 times smaller."""
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
