"""Shared fixtures: small synthetic MovieLens data in the official format, written by the tests themselves."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

import data_processor  # noqa: E402  (the project's folder is on the path from here on)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REAL_DATA_DIR = Path(os.environ.get("MOVIELENS_DIR", PROJECT_DIR / "data" / "ml-1m"))


def write_movielens(folder, n_users=60, n_movies=40, timestamps=True, seed=0):
    """A small MovieLens-1M look-alike: every user rates 20-30 movies, with a user and a movie effect so that
    a model has something to learn. Returns the folder."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    user_effect, movie_effect = rng.normal(0, 0.7, n_users), rng.normal(0, 0.7, n_movies)
    lines = []
    for user in range(1, n_users + 1):
        for movie in np.sort(rng.choice(np.arange(1, n_movies + 1), size=rng.integers(20, 31), replace=False)):
            rating = int(np.clip(np.rint(3.6 + user_effect[user - 1] + movie_effect[movie - 1]
                                         + rng.normal(0, 0.5)), 1, 5))
            lines.append(f"{user}::{movie}::{rating}" + (f"::{978300000 + len(lines)}" if timestamps else ""))
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")
    (folder / "users.dat").write_text("".join(f"{u}::{'MF'[u % 2]}::25::{u % 21}::{10000 + u}\n"
                                              for u in range(1, n_users + 1)), encoding="latin-1")
    (folder / "movies.dat").write_text("".join(f"{m}::Movie {m}: Caf\u00e9 ({1950 + m})::Drama|Comedy\n"
                                               for m in range(1, n_movies + 1)), encoding="latin-1")
    return folder


@pytest.fixture(autouse=True)
def float32_policy():
    """main() switches Keras' global dtype policy to bfloat16 on machines that have it; tests start from float32."""
    import keras

    keras.mixed_precision.set_dtype_policy("float32")


@pytest.fixture
def movielens_dir(tmp_path):
    return write_movielens(tmp_path / "ml-1m")


@pytest.fixture
def real_data_dir():
    if not (REAL_DATA_DIR / "ratings.dat").is_file():
        pytest.skip(f"MovieLens-1M not found in {REAL_DATA_DIR} (set MOVIELENS_DIR to run the integration tests)")
    return REAL_DATA_DIR


def synthetic_ratings(n_users, n_movies, seed=0, half_stars=False):
    """(user, movie, rating, timestamp) tuples with a user and a movie effect; every user rates 20-30 movies."""
    rng = np.random.default_rng(seed)
    user_effect, movie_effect = rng.normal(0, 0.7, n_users), rng.normal(0, 0.7, n_movies)
    rows = []
    for user in range(1, n_users + 1):
        for movie in np.sort(rng.choice(np.arange(1, n_movies + 1), size=rng.integers(20, 31), replace=False)):
            value = 3.6 + user_effect[user - 1] + movie_effect[movie - 1] + rng.normal(0, 0.5)
            rating = np.clip(np.rint(value * 2) / 2, 0.5, 5) if half_stars else int(np.clip(np.rint(value), 1, 5))
            rows.append((user, int(movie), rating, 978300000 + 3600 * len(rows)))
    return rows


def write_ml100k(folder, n_users=50, n_movies=40):
    """u.data (tab-separated), u.item ('|', latin-1) and u1-u5 .base/.test files that split u.data 5-fold."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = synthetic_ratings(n_users, n_movies)
    lines = [f"{user}\t{movie}\t{rating}\t{stamp}" for user, movie, rating, stamp in rows]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    (folder / "u.item").write_text("".join(f"{m}|Film {m} (199{m % 10})|01-Jan-1995||http://x|0|1\n"
                                           for m in range(1, n_movies + 1)), encoding="latin-1")
    fold = np.random.default_rng(1).integers(0, 5, len(lines))
    for k in range(5):
        (folder / f"u{k + 1}.base").write_text("".join(line + "\n" for line, f in zip(lines, fold) if f != k))
        (folder / f"u{k + 1}.test").write_text("".join(line + "\n" for line, f in zip(lines, fold) if f == k))
    return folder


def write_ml10m(folder, n_users=50, n_movies=40):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = synthetic_ratings(n_users, n_movies, half_stars=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{m}::{r:g}::{t}\n" for u, m, r, t in rows))
    (folder / "movies.dat").write_text("".join(f"{m}::Film {m}: Part {m} (2001)::Drama\n"
                                               for m in range(1, n_movies + 1)))
    return folder


def write_ml20m(folder, n_users=50, n_movies=40):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = synthetic_ratings(n_users, n_movies, half_stars=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n"
                                        + "".join(f"{u},{m * 1000},{r:.1f},{t}\n" for u, m, r, t in rows))
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "".join(
        f'{m * 1000},"Film, The {m} (2001)",Drama|Comedy\n' for m in range(1, n_movies + 1)))
    return folder


def write_netflix(folder, layout="combined", n_users=50, n_movies=40):
    """The Netflix Prize layout: blocks of a 'MovieID:' line and 'CustomerID,Rating,YYYY-MM-DD' lines, in
    combined_data_*.txt files (two here) or one training_set/mv_*.txt file per movie; movie_titles.csv."""
    folder = Path(folder)
    rows = synthetic_ratings(n_users, n_movies)
    blocks = {}
    start = np.datetime64("2005-01-01")
    for number, (user, movie, rating, _) in enumerate(rows):
        day = start + np.timedelta64(number % 365, "D")
        blocks.setdefault(movie, []).append(f"{user * 7 + 1000},{rating},{day}\n")
    texts = {movie: f"{movie}:\n" + "".join(lines) for movie, lines in sorted(blocks.items())}
    if layout == "combined":
        folder.mkdir(parents=True, exist_ok=True)
        movies = sorted(texts)
        half = len(movies) // 2
        (folder / "combined_data_1.txt").write_text("".join(texts[m] for m in movies[:half]))
        (folder / "combined_data_2.txt").write_text("".join(texts[m] for m in movies[half:]))
    else:
        (folder / "training_set").mkdir(parents=True, exist_ok=True)
        for movie, text in texts.items():
            (folder / "training_set" / f"mv_{movie:07d}.txt").write_text(text)
    (folder / "movie_titles.csv").write_text("".join(f"{m},2003,Film {m}, with a comma\n"
                                                     for m in range(1, n_movies + 1)), encoding="latin-1")
    return folder


def low_rank_ratings(n_users=120, n_items=80, density=0.3, seed=0):
    """Ratings from a rank-2 matrix plus biases and a little noise, on the 1-5 scale."""
    rng = np.random.default_rng(seed)
    user_factors, item_factors = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    scores = 3.5 + (user_factors[users] * item_factors[items]).sum(axis=1) + rng.normal(0, 0.3, len(users))
    ratings = np.clip(np.round(scores), 1, 5).astype(np.float32)
    return data_processor.Ratings(users.astype(np.int32), items.astype(np.int32), ratings, None,
                                  np.arange(1, n_users + 1), np.arange(1, n_items + 1), {}, (1.0, 5.0, 1.0),
                                  "synthetic", "", {})
