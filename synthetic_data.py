"""Synthetic rating data sets of the real size, in the official file formats: how anyone without the real data
checks that the program holds at full scale (benchmark.py --synthetic).

    ml-20m:  ratings.csv and movies.csv, 138,493 users, 26,744 movies, 20,000,263 ratings, half stars
    netflix: combined_data_1..4.txt and movie_titles.csv, 480,189 users, 17,770 movies, 100,480,507 ratings,
             dates 1999-11-11..2005-12-31

Ids are spread out as in the real data (ML-20M's movie ids reach 131,262; Netflix's customer ids 2,649,429), and
popularity is skewed as in it: a few movies and users hold most ratings (Zipf-like item popularity, log-normal user
activity). Ratings follow a user and an item effect, so a model has something to learn.
"""

import time
from pathlib import Path

import numpy as np
import pandas as pd

SIZES = {  # users, items, ratings, largest user id, largest item id
    "ml-20m": (138_493, 26_744, 20_000_263, 138_493, 131_262),
    "netflix": (480_189, 17_770, 100_480_507, 2_649_429, 17_770),
}
NETFLIX_DATES = ("1999-11-11", "2005-12-31")


def progress(message, started):
    print(f"\r{message} ({time.perf_counter() - started:.0f} s)", end="", flush=True)


def draw_ratings(n_users, n_items, n_ratings, seed=0):
    """Distinct (user, item) pairs with skewed popularity and ratings from user and item effects. Returns
    (users, items, ratings on a 0-1 scale of quality), sorted by item then user."""
    rng = np.random.default_rng(seed)
    item_weight = 1.0 / (np.arange(n_items) + 100.0) ** 0.9  # the top item holds about 0.15% of the ratings
    item_weight = rng.permutation(item_weight / item_weight.sum())
    user_weight = rng.lognormal(0, 0.8, n_users)
    user_weight /= user_weight.sum()
    # Every user and every item has at least one rating, as in the real data.
    every_user = rng.choice(n_items, size=n_users, p=item_weight).astype(np.int64) * n_users + np.arange(n_users)
    every_item = np.arange(n_items, dtype=np.int64) * n_users + rng.choice(n_users, size=n_items, p=user_weight)
    required = np.unique(np.concatenate([every_user, every_item]))
    keys = required
    for _ in range(10):  # draw, drop repeated pairs, draw the shortfall again
        missing = n_ratings - len(keys)
        if missing <= 0:
            break
        users = rng.choice(n_users, size=int(missing * 1.2) + 1000, p=user_weight).astype(np.int64)
        items = rng.choice(n_items, size=len(users), p=item_weight).astype(np.int64)
        keys = np.unique(np.concatenate([keys, items * n_users + users]))
    while len(keys) < n_ratings:  # the last few, drawn uniformly, where repeats are rare
        extra = rng.integers(0, n_users * n_items, size=n_ratings - len(keys) + 1000, dtype=np.int64)
        keys = np.unique(np.concatenate([keys, extra]))
    extra = np.setdiff1d(keys, required, assume_unique=True)
    keys = np.sort(np.concatenate([required, rng.permutation(extra)[:n_ratings - len(required)]]))
    items, users = np.divmod(keys, n_users)
    quality = (rng.normal(0, 0.6, n_users)[users] + rng.normal(0, 0.6, n_items)[items]
               + rng.normal(0, 0.7, n_ratings))
    return users.astype(np.int32), items.astype(np.int32), quality.astype(np.float32)


def spread_ids(count, largest, seed):
    """`count` distinct sorted ids from 1 to `largest` (1..count when they are equal)."""
    if count == largest:
        return np.arange(1, count + 1)
    return np.sort(np.random.default_rng(seed).choice(np.arange(1, largest + 1), size=count, replace=False))


def write_netflix(folder, user_ids, item_ids, items, quality, rng, started):
    """The Netflix Prize layout: four combined_data_*.txt files of 'MovieID:' blocks, and movie_titles.csv."""
    name, n_items, n_ratings = "netflix", len(item_ids), len(items)
    ratings = np.clip(np.round(3.6 + quality), 1, 5).astype(np.int8)
    first, last = (np.datetime64(day) for day in NETFLIX_DATES)
    days = first + rng.integers(0, int((last - first).astype(int)) + 1, n_ratings).astype("timedelta64[D]")
    counts = np.bincount(items, minlength=n_items)
    files = np.array_split(np.arange(n_items), 4)
    for number, movies in enumerate(files, start=1):
        progress(f"Synthetic {name}: writing combined_data_{number}.txt", started)
        rows = slice(counts[:movies[0]].sum(), counts[:movies[-1] + 1].sum())
        text = pd.DataFrame({"c": user_ids[rows], "r": ratings[rows], "d": days[rows]}).to_csv(
            index=False, header=False, date_format="%Y-%m-%d").encode()
        line_starts = np.concatenate([[0], np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10) + 1])
        block_ends = line_starts[np.concatenate([[0], np.cumsum(counts[movies])])]
        with open(folder / f"combined_data_{number}.txt", "wb") as handle:
            for index, movie in enumerate(movies):
                handle.write(f"{item_ids[movie]}:\n".encode())
                handle.write(text[block_ends[index]:block_ends[index + 1]])
    with open(folder / "movie_titles.csv", "w", encoding="latin-1") as handle:
        handle.writelines(f"{i},{1950 + i % 55},Film {i}, with a comma\n" for i in item_ids)


def write_synthetic(name, folder, scale=1.0, seed=0):
    """Write the synthetic data set `name` into `folder`, scaled by `scale` in ratings and by its square root in
    users and items (which keeps the density of the real data). Returns the number of ratings written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_users, n_items, n_ratings, largest_user, largest_item = SIZES[name]
    n_users, n_items = (max(int(value * scale ** 0.5), 10) for value in (n_users, n_items))
    n_ratings = max(int(n_ratings * scale), 10)
    started = time.perf_counter()
    progress(f"Synthetic {name}: drawing {n_ratings:,} ratings", started)
    users, items, quality = draw_ratings(n_users, n_items, n_ratings, seed)
    user_ids = spread_ids(n_users, max(int(largest_user * scale ** 0.5), n_users), seed + 1)[users]
    item_ids = spread_ids(n_items, max(int(largest_item * scale ** 0.5), n_items), seed + 2)
    rng = np.random.default_rng(seed + 3)
    if name == "ml-20m":
        ratings = np.clip(np.round((3.5 + quality) * 2) / 2, 0.5, 5.0)
        stamps = rng.integers(789_652_009, 1_427_784_002, n_ratings)
        frame = pd.DataFrame({"userId": user_ids, "movieId": item_ids[items], "rating": ratings,
                              "timestamp": stamps}).sort_values(["userId", "movieId"], kind="stable")
        progress(f"Synthetic {name}: writing ratings.csv", started)
        frame.to_csv(folder / "ratings.csv", index=False, float_format="%.1f")
        titles = pd.DataFrame({"movieId": item_ids, "title": [f"Film {i}, The ({1900 + i % 115})" for i in
                                                              item_ids], "genres": "Drama"})
        titles.to_csv(folder / "movies.csv", index=False)
    else:
        write_netflix(folder, user_ids, item_ids, items, quality, rng, started)
    (folder / "SYNTHETIC.txt").write_text(f"synthetic {name}, scale {scale}, seed {seed}: {n_users} users, "
                                          f"{n_items} items, {n_ratings} ratings\n")
    progress(f"Synthetic {name}: {n_ratings:,} ratings written to {folder}", started)
    print()
    return n_ratings
