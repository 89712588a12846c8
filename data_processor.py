"""MovieLens-1M: find or download it, parse and validate it, split it, build rating matrices.

The data flows top to bottom through this file:
    ensure_movielens -> load_movielens -> split_ratings -> rating_matrix / sparse_rating_matrix

Ratings are kept as three aligned NumPy arrays (zero-based user index, zero-based item index, rating);
a row of a matrix is a user (the seed's orientation) or an item (I-AutoRec's orientation).
"""

import hashlib
import io
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.model_selection import train_test_split

PROJECT_DIR = Path(__file__).resolve().parent
MOVIELENS_DIR = PROJECT_DIR / "data" / "ml-1m"  # overridden by $MOVIELENS_DIR, then by --data-dir
MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
MOVIELENS_SHA256 = "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"
SPLIT_SEED = 1994
TEST_FRACTION = 0.1  # of all ratings
VAL_FRACTION = 0.1  # of the ratings left after the test split: 81/9/10 overall


class DataError(Exception):
    """A problem with the data that the user can fix; the message says what and how."""


def resolve_data_dir(flag_value=None):
    """--data-dir wins over $MOVIELENS_DIR, which wins over the MOVIELENS_DIR constant."""
    return Path(flag_value or os.environ.get("MOVIELENS_DIR") or MOVIELENS_DIR).expanduser()


def ensure_movielens(data_dir):
    """Return data_dir once it holds ratings.dat, downloading and unpacking MovieLens-1M if it does not."""
    data_dir = Path(data_dir)
    if (data_dir / "ratings.dat").is_file():
        return data_dir
    print(f"MovieLens-1M not found in {data_dir}; downloading {MOVIELENS_URL}")
    import keras  # imported here: parsing and splitting do not need it

    download_dir = data_dir.parent
    zip_path = download_dir / "ml-1m.zip"
    try:
        download_dir.mkdir(parents=True, exist_ok=True)
        # get_file shows progress, deletes a partial download and refuses a file whose SHA-256 differs.
        keras.utils.get_file(fname=zip_path.name, origin=MOVIELENS_URL, file_hash=MOVIELENS_SHA256,
                             cache_dir=str(download_dir), cache_subdir=".")
        unpack_movielens(zip_path, data_dir)
    except Exception as error:  # offline, HTTP error, checksum mismatch, unwritable folder, bad zip
        if zip_path.is_file() and sha256_of(zip_path) != MOVIELENS_SHA256:
            zip_path.unlink()  # never keep a corrupt or foreign file under the name of the real one
        raise DataError(
            f"MovieLens-1M is not in {data_dir} (no ratings.dat there) and could not be downloaded "
            f"from {MOVIELENS_URL}: {error}\n"
            f"Fix: download and unzip ml-1m.zip yourself and point the program at the folder that holds "
            f"ratings.dat with --data-dir PATH or the environment variable MOVIELENS_DIR."
        ) from None
    return data_dir


def unpack_movielens(zip_path, data_dir):
    """Unpack ml-1m.zip's files into data_dir through a temporary folder, so a failure leaves nothing half-done."""
    staging = Path(tempfile.mkdtemp(dir=data_dir.parent, prefix=".ml-1m-"))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(staging)
        data_dir.mkdir(parents=True, exist_ok=True)
        for name in ("movies.dat", "users.dat", "README", "ratings.dat"):  # ratings.dat last: it marks completion
            if (staging / "ml-1m" / name).is_file():
                os.replace(staging / "ml-1m" / name, data_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_dat(path, columns, optional_columns=0):
    """Parse a MovieLens '::'-separated latin-1 file into a DataFrame (numbers where a column is all numbers).

    '::' is replaced by a tab so that pandas' fast C parser can read the file (a two-character separator would
    force its slow Python engine). The last `optional_columns` columns may be missing from a line.
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path} is empty. Fix: replace it with the file from {MOVIELENS_URL}.")
    if b"\x00" in raw[:4096]:
        raise DataError(f"{path} contains NUL bytes: it is not latin-1 text (UTF-16?). "
                        f"Fix: use the original file from {MOVIELENS_URL}, or re-save it as latin-1.")
    if b"\t" in raw:
        line_number = raw[: raw.index(b"\t")].count(b"\n") + 1
        bad_line(path, line_number, "a tab character (fields are separated by '::')")
    try:
        frame = pd.read_csv(io.BytesIO(raw.replace(b"::", b"\t")), sep="\t", header=None, names=columns,
                            encoding="latin-1", skip_blank_lines=False, keep_default_na=False, na_values=[""],
                            quoting=3)
    except pd.errors.ParserError as error:  # a line with more fields than columns
        match = re.search(r"line (\d+)", str(error))
        line_number = int(match.group(1)) if match else 0
        bad_line(path, line_number, f"more than {len(columns)} '::'-separated fields")
    required = columns[: len(columns) - optional_columns]
    missing = frame[required].isna().any(axis=1)
    if missing.any():
        line_number = int(np.argmax(missing.to_numpy())) + 1
        bad_line(path, line_number, f"fewer than {len(required)} '::'-separated fields ({'::'.join(required)})")
    return frame


def bad_line(path, line_number, problem):
    """Raise a DataError that quotes the offending line of the file."""
    lines = Path(path).read_bytes().decode("latin-1").split("\n")
    text = lines[line_number - 1].rstrip("\r") if 0 < line_number <= len(lines) else ""
    raise DataError(f"{path}, line {line_number}: {problem}: {text!r}. "
                    f"Fix: correct or delete that line, or replace the file with the original from {MOVIELENS_URL}.")


def integer_column(frame, column, path):
    """The column as int64, naming the first line whose value is not an integer."""
    if pd.api.types.is_integer_dtype(frame[column]):
        return frame[column].to_numpy(dtype=np.int64)
    values = pd.to_numeric(frame[column], errors="coerce")
    not_integer = values.isna().to_numpy() | (values.to_numpy() != np.round(values.to_numpy()))
    if not_integer.any():
        line_number = int(np.argmax(not_integer)) + 1
        bad_line(path, line_number, f"{column} is not an integer")
    return values.to_numpy().astype(np.int64)


def load_ratings(path):
    """ratings.dat: 'UserID::MovieID::Rating::Timestamp', or without the timestamp. Returns (users, items, ratings)
    with zero-based indices, validated: integer ids in range, ratings 1-5, no (user, movie) rated twice."""
    frame = read_dat(path, ["UserID", "MovieID", "Rating", "Timestamp"], optional_columns=1)
    user_ids = integer_column(frame, "UserID", path)
    movie_ids = integer_column(frame, "MovieID", path)
    ratings = integer_column(frame, "Rating", path)
    for name, values, low, high in [("UserID", user_ids, 1, np.inf), ("MovieID", movie_ids, 1, np.inf),
                                    ("Rating", ratings, 1, 5)]:
        outside = (values < low) | (values > high)
        if outside.any():
            allowed = f"{low}-{high}" if high < np.inf else f"{low} or more"
            bad_line(path, int(np.argmax(outside)) + 1, f"{name} {values[outside][0]} is not {allowed}")
    pair = user_ids * (movie_ids.max() + 1) + movie_ids
    duplicated = pd.Series(pair).duplicated().to_numpy()
    if duplicated.any():
        line_number = int(np.argmax(duplicated)) + 1
        first = int(np.argmax(pair == pair[line_number - 1])) + 1
        bad_line(path, line_number, f"(UserID, MovieID) already rated on line {first}")
    return (user_ids - 1).astype(np.int32), (movie_ids - 1).astype(np.int32), ratings.astype(np.float32)


def load_movies(path):
    """movies.dat: 'MovieID::Title::Genres'. Returns {zero-based item index: title}, or {} with a warning if
    the file is missing (titles are only used to print recommendations)."""
    if not Path(path).is_file():
        print(f"Warning: {path} not found; recommendations will show movie ids instead of titles.")
        return {}
    frame = read_dat(path, ["MovieID", "Title", "Genres"])
    movie_ids = integer_column(frame, "MovieID", path)
    return dict(zip((movie_ids - 1).tolist(), frame["Title"].tolist()))


def load_users(path):
    """users.dat: 'UserID::Gender::Age::Occupation::Zip-code'. Only validated: the model uses ratings alone."""
    if not Path(path).is_file():
        print(f"Warning: {path} not found; skipping the check of user ids against it.")
        return None
    frame = read_dat(path, ["UserID", "Gender", "Age", "Occupation", "Zip"])
    user_ids = integer_column(frame, "UserID", path)
    integer_column(frame, "Age", path)
    integer_column(frame, "Occupation", path)
    return user_ids - 1


def load_movielens(data_dir):
    """Parse and validate the three files. Returns a dict with 'users', 'items', 'ratings' (aligned arrays),
    'n_users', 'n_items' (the largest ids: 6040 x 3952 for MovieLens-1M, as the seed's matrices) and 'titles'."""
    data_dir = Path(data_dir)
    users, items, ratings = load_ratings(data_dir / "ratings.dat")
    known_users = load_users(data_dir / "users.dat")
    if known_users is not None:
        unknown = np.setdiff1d(users, known_users)
        if unknown.size:
            raise DataError(f"{data_dir / 'ratings.dat'} rates as UserID {unknown[0] + 1}, which is not in "
                            f"{data_dir / 'users.dat'}. Fix: use matching files from {MOVIELENS_URL}.")
    titles = load_movies(data_dir / "movies.dat")
    return {"users": users, "items": items, "ratings": ratings, "titles": titles,
            "n_users": int(users.max()) + 1, "n_items": int(items.max()) + 1}


def split_ratings(data, seed=SPLIT_SEED):
    """Split ratings 81/9/10 into train/validation/test, stratified by user, as the seed did.

    Returns {'train': idx, 'val': idx, 'test': idx}: index arrays into the rating arrays, disjoint and covering all.
    """
    index = np.arange(len(data["ratings"]))
    rest, test = train_test_split(index, test_size=TEST_FRACTION, stratify=data["users"], random_state=seed)
    train, val = train_test_split(rest, test_size=VAL_FRACTION, stratify=data["users"][rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def triples(data, part, orientation="user"):
    """(rows, cols, ratings) of one part of the split; rows are users or items depending on `orientation`."""
    users, items = data["users"][part], data["items"][part]
    rows, cols = (users, items) if orientation == "user" else (items, users)
    return rows, cols, data["ratings"][part]


def matrix_shape(data, orientation="user"):
    return (data["n_users"], data["n_items"]) if orientation == "user" else (data["n_items"], data["n_users"])


def rating_matrix(rows, cols, ratings, shape):
    """Dense float32 matrix with the ratings at (row, col) and 0 for unknown."""
    matrix = np.zeros(shape, dtype=np.float32)
    matrix[rows, cols] = ratings
    return matrix


def sparse_rating_matrix(rows, cols, ratings, shape):
    """The same matrix in CSR form: 4.5% dense, so about 20 times smaller."""
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
