"""Recommendations from a trained model: the top N unseen items of one user, of every user (streamed to a CSV file
in batches, so that memory stays bounded at Netflix size), of a new user from a few ratings, and the items whose
learned representations are nearest to an item's. recommend.py is their command line.

Predictions come from each user's training ratings, as in evaluation; an item the user rated in any part of the
split is never recommended. Items are ranked by the unclipped prediction and shown clipped to the rating scale.
"""

import csv
import time
from pathlib import Path

import numpy as np

import metrics
import utils

USER_BATCH = 1024  # users predicted at once (user-based networks): 1024 x 17,770 Netflix items is 73 MB
ITEM_BATCH = 64  # items predicted at once (item-based networks): 64 x 480,189 Netflix users is 123 MB


class RecommendError(Exception):
    """A request the model cannot answer (an unknown id, a model that cannot read a new user); says why and what
    to do instead."""


def item_label(data, item):
    return data.titles.get(int(item), untitled_label(data.item_ids[item]))


def untitled_label(item_id):
    """An item without a title: 'item 12' for a number, a text id as it is (a product name, say)."""
    return f"item {item_id}" if str(item_id).lstrip("-").isdigit() else str(item_id)


def id_after(title, item_id):
    """'item 12, ' to print after a title; nothing where the label is the id already (data without titles)."""
    return "" if title == untitled_label(item_id) else f"item {item_id}, "


def index_of(ids, text, what):
    """The dense index of an original id given as text (ids are numbers or text, as in the data set)."""
    try:
        wanted = np.array([text]).astype(ids.dtype)[0]
    except ValueError:
        wanted = None
    index = int(np.searchsorted(ids, wanted)) if wanted is not None else len(ids)
    if index >= len(ids) or ids[index] != wanted:
        raise RecommendError(f"{what} {text!r} is not in the data ({len(ids):,} {what}s, from {ids[0]} to "
                             f"{ids[-1]}). Fix: give an id that occurs in the ratings file.")
    return index


def rated_matrix(data, orientation):
    """Which (row, column) pairs have a rating in any part of the split, as a sparse boolean matrix oriented as the
    network's rows."""
    rows, cols = (data.users, data.items) if orientation == "user" else (data.items, data.users)
    shape = (data.n_users, data.n_items) if orientation == "user" else (data.n_items, data.n_users)
    import scipy.sparse

    return scipy.sparse.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=shape)


def top_n(network, prepared, user_index, count=10):
    """[(item id, title, predicted rating clipped to the scale)] of the `count` best items the user has not
    rated."""
    users, items, scores = next(top_n_batches(network, prepared, np.array([user_index]), count))
    data = prepared.data
    return [(data.item_ids[item], item_label(data, item), float(np.clip(score, *data.scale[:2])))
            for item, score in zip(items[0], scores[0]) if np.isfinite(score)]


def print_top_n(recommendations, user_id):
    print(f"\nTop {len(recommendations)} recommendations for user {user_id} (items they have not rated):")
    for rank, (item_id, title, predicted) in enumerate(recommendations, start=1):
        print(f"{rank:2d}. {title}  ({id_after(title, item_id)}predicted {predicted:.2f})")


def top_n_batches(network, prepared, users, count, progress=None):
    """(users, [len(users), count] item indices, their predictions) for batches of the given user indices, every
    rated item scored -inf. User-based networks predict a batch of users' rows; item-based ones predict every
    item's row (all users at once) in batches of items, keeping a running top N per user."""
    inputs, rated = network.input_matrix(prepared.train), rated_matrix(prepared.data, prepared.orientation)
    if prepared.orientation == "user":
        for first in range(0, len(users), USER_BATCH):
            batch = users[first:first + USER_BATCH]
            scores = metrics.predict_rows(network, inputs, batch)
            scores[rated[batch].toarray()] = -np.inf
            top = metrics.top_k(scores, count)
            if progress:
                progress.add(len(batch))
            yield batch, top, np.take_along_axis(scores, top, axis=1)
        return
    n_items = prepared.data.n_items
    top_items = np.zeros((len(users), 0), dtype=np.int32)
    top_scores = np.zeros((len(users), 0), dtype=np.float32)
    for first in range(0, n_items, ITEM_BATCH):
        items = np.arange(first, min(first + ITEM_BATCH, n_items))
        scores = metrics.predict_rows(network, inputs, items)
        scores[rated[items].toarray()] = -np.inf
        candidates = np.concatenate([top_scores, scores[:, users].T], axis=1)
        candidate_items = np.concatenate([top_items, np.broadcast_to(items.astype(np.int32),
                                                                     (len(users), len(items)))], axis=1)
        keep = metrics.top_k(candidates, count)
        top_items = np.take_along_axis(candidate_items, keep, axis=1)
        top_scores = np.take_along_axis(candidates, keep, axis=1)
        if progress:
            progress.add(len(items))
    for first in range(0, len(users), USER_BATCH):
        yield (users[first:first + USER_BATCH], top_items[first:first + USER_BATCH],
               top_scores[first:first + USER_BATCH])


def write_all_users(path, network, prepared, users, count):
    """`user_id,rank,item_id,predicted_rating,title` lines, `count` per user (fewer where a user has rated almost
    every item), written through a temporary file. Returns (users written, seconds)."""
    data = prepared.data
    started = time.perf_counter()
    steps = len(users) if prepared.orientation == "user" else data.n_items
    progress = utils.Progress(steps, "user" if prepared.orientation == "user" else "item")
    titles = np.array([data.titles.get(item, "") for item in range(data.n_items)], dtype=object)

    def write(temporary):
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)  # quotes ids and titles that hold a comma, a quote or a line break
            writer.writerow(["user_id", "rank", "item_id", "predicted_rating", "title"])
            for batch, items, scores in top_n_batches(network, prepared, users, count, progress):
                writer.writerows(recommendation_rows(data, batch, items, scores, titles))
        progress.done()

    utils.write_atomic(Path(path), write)
    return len(users), time.perf_counter() - started


def recommendation_rows(data, users, items, scores, titles):
    """CSV rows of a batch of users' top-N (unrated-item slots left out)."""
    clipped = np.clip(scores, *data.scale[:2])
    rows = []
    for user, user_items, user_scores, user_clipped in zip(users, items, scores, clipped):
        user_id = data.user_ids[user]
        for rank, (item, score, shown) in enumerate(zip(user_items, user_scores, user_clipped), start=1):
            if np.isfinite(score):
                rows.append([user_id, rank, data.item_ids[item], f"{shown:.4f}", titles[item]])
    return rows


def cold_user_top_n(network, prepared, ratings, count=10):
    """The top N of a new user from {item index: rating}, without retraining: a user-based network reads the new
    rating row as it reads a known user's. Item-based networks have one input per known user, so a new user needs
    retraining."""
    data = prepared.data
    if prepared.orientation != "user" or getattr(network, "global_kernel_size", 0):
        why = ("its rows are items (each known user is one of its inputs)" if prepared.orientation != "user" else
               "GLocal-K convolves each row with its neighbours in the matrix, which a new user does not have")
        raise RecommendError(f"this model cannot read a new user: {why}. Fix: add the user's ratings to the ratings "
                             f"file and train again, or use a user-based model (--orientation user, e.g. python3 "
                             f"main.py --preset reference).")
    row = np.zeros((1, data.n_items), dtype=np.float32)
    row[0, list(ratings)] = list(ratings.values())
    scores = metrics.predict_rows(network, row, [0])
    scores[0, list(ratings)] = -np.inf
    top = metrics.top_k(scores, count)[0]
    return [(data.item_ids[item], item_label(data, item), float(np.clip(scores[0, item], *data.scale[:2])))
            for item in top if np.isfinite(scores[0, item])]


def item_vectors(network, prepared):
    """Each item's learned representation: item-based networks, its code (the latent layer's output for its rating
    row); user-based networks, its column of the output layer's kernel (the weights that produce its rating)."""
    if prepared.orientation == "item":
        inputs = network.input_matrix(prepared.train)
        return np.concatenate([
            np.asarray(network.encode(inputs[first:first + USER_BATCH].toarray()
                                      if hasattr(inputs, "toarray") else inputs[first:first + USER_BATCH]),
                       dtype=np.float32) for first in range(0, prepared.data.n_items, USER_BATCH)])
    layer = network.output_layer
    kernel = layer.effective_kernel() if hasattr(layer, "effective_kernel") else layer.kernel
    return np.asarray(kernel, dtype=np.float32).T


def similar_items(network, prepared, item_index, count=10):
    """[(item id, title, cosine similarity)] of the `count` items whose representations are nearest the item's, the
    item itself first. The representations are centred (their mean over items subtracted) first, so that what every
    item shares (sigmoid codes are all positive) does not make every pair similar."""
    vectors = item_vectors(network, prepared)
    vectors -= vectors.mean(axis=0)
    norms = np.linalg.norm(vectors, axis=1)
    cosine = np.clip(vectors @ vectors[item_index] / np.maximum(norms * norms[item_index], 1e-12), -1.0, 1.0)
    others = cosine.copy()
    others[item_index] = -np.inf  # the item leads even where another item has the very same representation
    top = [item_index, *metrics.top_k(others[None, :], count)[0]]
    data = prepared.data
    return [(data.item_ids[item], item_label(data, item), float(cosine[item])) for item in top]
