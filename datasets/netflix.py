"""The Netflix Prize data: its two layouts (training_set/mv_*.txt, or the four combined_data_*.txt files), its
titles, and the paper's time split with its training windows. It cannot be downloaded by this program (its
license)."""

import csv
import io
import re
from pathlib import Path

import numpy as np

import utils
from datasets import splits
from datasets.lines import DataError, bad_line, check_field_counts, find_all, read_bytes, read_titles
from datasets.source import DataSet, Read

SCALE = (1.0, 5.0, 1.0)
HINT = "replace it with the original file of the Netflix Prize data"
HELP = (
    "The Netflix Prize data cannot be downloaded by this program (its license). Get it from the Netflix Prize "
    "archive or its repackaging (the Kaggle data set 'netflix-prize-data'), unpack it and point --data-dir at the "
    "folder that holds either the original training_set/mv_*.txt files or the four combined_data_*.txt files, plus "
    "movie_titles.csv. Each block of those files is a 'MovieID:' line followed by 'CustomerID,Rating,YYYY-MM-DD' "
    "lines.")
TIME_WINDOWS = {  # the paper's windows: (train from, train to, test from, test to), inclusive dates
    "full": ("1999-12-01", "2005-11-30", "2005-12-01", "2005-12-31"),
    "3m": ("2005-09-01", "2005-11-30", "2005-12-01", "2005-12-31"),
    "6m": ("2005-06-01", "2005-11-30", "2005-12-01", "2005-12-31"),
    "1y": ("2004-06-01", "2005-05-31", "2005-06-01", "2005-06-30"),
}


def netflix_files(data_dir):
    """The rating files of the Netflix Prize data in either layout, in a fixed order."""
    data_dir = Path(data_dir)
    combined = sorted(data_dir.glob("combined_data_*.txt"))
    return combined or sorted((data_dir / "training_set").glob("mv_*.txt"))

def read_netflix(data_dir, options=None, batch_bytes=1 << 29):
    """Blocks of a 'MovieID:' line followed by 'CustomerID,Rating,YYYY-MM-DD' lines. The header lines are cut out
    and the dates' dashes become commas, so pandas' C parser reads five integer columns; the movie of each line
    comes from counting the lines of its block. Files are read in batches of about `batch_bytes` to bound memory
    (one combined_data file, or some hundreds of mv_*.txt files, at a time)."""
    import pandas as pd

    hint, files = HINT, netflix_files(data_dir)
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
    progress = utils.Progress(len(batches), "file batch")
    for batch in batches:
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
        progress.add(ratings=sum(len(part) for part in ratings))
    progress.done()
    users, items, ratings = np.concatenate(users), np.concatenate(items), np.concatenate(ratings)
    titles = read_titles(data_dir / "movie_titles.csv", "replace it with movie_titles.csv of the Netflix Prize data",
                         ",", maxsplit=2, title_field=2)
    return Read(users, items, ratings, np.concatenate(days), titles, SCALE, data_dir, netflix_files(data_dir), None)

def netflix_values_valid(users, ratings):
    """Whether every rating is a whole star from 1 to 5 and every CustomerID 1 or more."""
    low, high, _ = SCALE
    return bool(((ratings >= low) & (ratings <= high) & (ratings == np.round(ratings)) & (users >= 1)).all())

def netflix_bad_line(paths, hint):
    """Raise the error naming the first line of these files that is not 'CustomerID,Rating,YYYY-MM-DD' with a
    CustomerID from 1, a rating from 1 to 5 and a real date (read the slow way, as text, only once the fast parser
    has failed or read a value out of range)."""
    import pandas as pd

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


def time_split(data, seed, window):
    """The paper's protocol: train on a window of dates (TIME_WINDOWS), test on the month after it."""
    timestamps = splits.require_timestamps(data)
    day = 86400
    train_from, train_to, test_from, test_to = (np.datetime64(date, "s").astype(np.int64)
                                                for date in TIME_WINDOWS[window])
    return splits.time_window_split(data, seed, (timestamps >= train_from) & (timestamps < train_to + day),
                                    (timestamps >= test_from) & (timestamps < test_to + day))


DATASETS = {"netflix": DataSet(read_netflix, SCALE, "the Netflix Prize data (get it yourself: see the README)",
                               folder="netflix", present=lambda data_dir: bool(netflix_files(data_dir)),
                               missing_help=f"(Neither training_set/mv_*.txt nor combined_data_*.txt there.) {HELP}",
                               time_split=time_split, time_windows=tuple(TIME_WINDOWS))}
