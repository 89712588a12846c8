"""Shared fixtures: small synthetic MovieLens data in the official format, written by the tests themselves."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
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
