"""Evaluation in NumPy, on (user, item, rating) triples: the same numbers whichever way the matrix is oriented.

Rating errors (predictions clipped to the data set's scale):
- masked RMSE (the seed's metric): per user, the RMSE over that user's ratings, then the mean over users;
- RMSE (global, the literature's metric): over all ratings.
Ranking quality: NDCG@10 and Recall@10 over each user's test ratings of RELEVANT_RATING or more, ranking every
item the user has not rated in training.

Also the prediction helpers that run a trained network (any callable model) over rows of a sparse matrix.
"""

import numpy as np

RELEVANT_RATING = 4.0  # a test rating this high counts as a relevant item for the ranking metrics
RANKING_MAX_CELLS = 2 * 10 ** 8  # an item-based model scores all users of all items at once: skip above this size


def per_user_masked_rmse(users, ratings, predictions, scale=(1.0, 5.0)):
    """The seed's metric: per user, RMSE over that user's ratings with predictions clipped to the scale, then the
    mean over users (users with no rating in this part are left out)."""
    squared_error = np.square(np.clip(predictions, scale[0], scale[1]) - ratings).astype(np.float64)
    sums = np.bincount(users, weights=squared_error)
    counts = np.bincount(users)
    has = counts > 0
    return float(np.mean(np.sqrt(sums[has] / counts[has])))


def global_rmse(ratings, predictions, scale=(1.0, 5.0)):
    """The literature's metric: RMSE over all ratings, predictions clipped to the scale."""
    squared_error = np.square(np.clip(predictions, scale[0], scale[1]) - ratings).astype(np.float64)
    return float(np.sqrt(np.mean(squared_error)))


def predict_parts(data, split, predict):
    """{'val': ..., 'test': ...}: predict(users, items) at the validation and test ratings, aligned with the split."""
    return {part: predict(data.users[getattr(split, part)], data.items[getattr(split, part)])
            for part in ("val", "test")}


def evaluate_predictions(data, split, predictions, score_users):
    """Both RMSEs on the validation and test ratings of predictions {'val': ..., 'test': ...} (aligned with
    split.val and split.test) and, where score_users is given, NDCG@10 and Recall@10 on the test ratings:
    score_users(users) -> [users, items] scores (metrics of None where it is None)."""
    scale = data.scale[:2]
    result = {}
    for part in ("val", "test"):
        index = getattr(split, part)
        users, ratings = data.users[index], data.ratings[index]
        result[f"{part}_masked_rmse"] = per_user_masked_rmse(users, ratings, predictions[part], scale)
        result[f"{part}_rmse"] = global_rmse(ratings, predictions[part], scale)
    ranking = {"ndcg_at_10": None, "recall_at_10": None}
    if score_users is not None:
        train, test = split.train, split.test
        ranking = ranking_metrics(score_users, data.users[train], data.items[train], data.users[test],
                                  data.items[test], data.ratings[test], data.n_users, data.n_items)
    result.update({f"test_{key}": value for key, value in ranking.items()})
    return result


def ranking_metrics(score_users, train_users, train_items, test_users, test_items, test_ratings, n_users, n_items,
                    k=10, batch_size=1024):
    """NDCG@k and Recall@k, averaged over the users with at least one relevant test item.

    score_users(users) returns the [len(users), n_items] scores of those users. For each user, every item not
    rated in training is ranked by score; the relevant items are the user's test items rated RELEVANT_RATING or
    more. Recall@k = hits in the top k / min(k, relevant items); NDCG@k uses binary relevance, with the ideal
    ranking of min(k, relevant items) hits as its normaliser.
    """
    relevant = test_ratings >= RELEVANT_RATING
    relevant_users, relevant_items = test_users[relevant], test_items[relevant]
    users = np.unique(relevant_users)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    train_order = np.argsort(train_users, kind="stable")
    relevant_order = np.argsort(relevant_users, kind="stable")
    sorted_train_users, sorted_relevant_users = train_users[train_order], relevant_users[relevant_order]
    row_of = np.full(n_users, -1)
    ndcg, recall = [], []
    for first in range(0, len(users), batch_size):
        batch = users[first:first + batch_size]  # users is sorted: the batch is a range of user indices
        row_of[batch] = np.arange(len(batch))
        scores = np.array(score_users(batch), dtype=np.float64)
        seen = train_order[np.searchsorted(sorted_train_users, batch[0]):
                           np.searchsorted(sorted_train_users, batch[-1], side="right")]
        seen = seen[row_of[train_users[seen]] >= 0]
        scores[row_of[train_users[seen]], train_items[seen]] = -np.inf  # rated in training: not ranked
        top = top_k(scores, k)
        wanted = relevant_order[np.searchsorted(sorted_relevant_users, batch[0]):
                                np.searchsorted(sorted_relevant_users, batch[-1], side="right")]
        is_relevant = np.zeros((len(batch), n_items), dtype=bool)
        is_relevant[row_of[relevant_users[wanted]], relevant_items[wanted]] = True
        row_of[batch] = -1
        hits = np.take_along_axis(is_relevant, top, axis=1)
        n_relevant = np.minimum(is_relevant.sum(axis=1), k)
        ndcg.append((hits * discounts[:hits.shape[1]]).sum(axis=1) / ideal[n_relevant - 1])
        recall.append(hits.sum(axis=1) / n_relevant)
    if not ndcg:
        return {f"ndcg_at_{k}": None, f"recall_at_{k}": None}
    return {f"ndcg_at_{k}": float(np.mean(np.concatenate(ndcg))),
            f"recall_at_{k}": float(np.mean(np.concatenate(recall)))}


def top_k(scores, k):
    """Column indices of the k highest scores of each row, best first."""
    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable"),
                              axis=1)


def predict_rows(model, inputs, rows):
    """Dense outputs of `model` for the given rows of a (sparse) input matrix."""
    batch = inputs[rows].toarray() if hasattr(inputs, "toarray") else inputs[rows]
    return np.array(model(batch, training=False), dtype=np.float32)  # a writable copy


def predict_at(model, inputs, rows, cols, batch_size=1024):
    """Predictions of `model` at (rows[k], cols[k]), each row predicted from its row of the sparse `inputs`.
    Only the rows that are asked for are run through the network, one batch at a time."""
    predictions = np.empty(len(rows), dtype=np.float32)
    wanted_rows = np.unique(rows)
    for first in range(0, len(wanted_rows), batch_size):
        batch_rows = wanted_rows[first:first + batch_size]
        outputs = predict_rows(model, inputs, batch_rows)
        selected = np.flatnonzero((rows >= batch_rows[0]) & (rows <= batch_rows[-1]))
        predictions[selected] = outputs[np.searchsorted(batch_rows, rows[selected]), cols[selected]]
    return predictions


def user_scorer(model, inputs, orientation, n_users, n_items, batch_size=1024):
    """A function users -> [len(users), n_items] predicted ratings. User-based: the users' own rows. Item-based:
    each item's row predicts every user, so all items are run once and the result transposed (None when that
    matrix would exceed RANKING_MAX_CELLS)."""
    if orientation == "user":
        return lambda users: predict_rows(model, inputs, users)
    if n_users * n_items > RANKING_MAX_CELLS:
        return None
    item_by_user = np.concatenate([predict_rows(model, inputs, np.arange(first, min(first + batch_size, n_items)))
                                   for first in range(0, n_items, batch_size)])
    return lambda users: item_by_user[:, users].T


def paired_tests(ratings, predictions, reference, scale):
    """Is a model's test error different from a reference model's on the same splits? Per split, Student's paired
    t-test on the two models' squared errors over the same test ratings; across splits, the paired t-test on the
    split RMSEs (two or more splits). Lists hold one array per split. Returns the mean RMSE difference and the
    p-values (None where a test cannot be made, e.g. identical predictions)."""
    from scipy import stats

    def finite(value):
        return float(value) if np.isfinite(value) else None

    own_rmse, reference_rmse, per_split = [], [], []
    for truth, own, other in zip(ratings, predictions, reference):
        own_error = np.square(np.clip(own, *scale) - truth).astype(np.float64)
        other_error = np.square(np.clip(other, *scale) - truth).astype(np.float64)
        same = np.array_equal(own_error, other_error)
        per_split.append(None if same else finite(stats.ttest_rel(own_error, other_error).pvalue))
        own_rmse.append(np.sqrt(own_error.mean()))
        reference_rmse.append(np.sqrt(other_error.mean()))
    difference = np.array(own_rmse) - np.array(reference_rmse)
    across = (finite(stats.ttest_rel(own_rmse, reference_rmse).pvalue)
              if len(own_rmse) > 1 and np.any(difference != 0) else None)
    return {"test_rmse_difference": float(difference.mean()), "p_per_split": per_split, "p_across_splits": across}
