"""Simple baselines on the same split, to put the autoencoders' numbers in context (baselines.py and main.py's
--compare run them):

- global mean: every rating predicted as the mean training rating;
- user+item biases: mean + b_user + b_item, fitted by alternating least squares with L2 strength `reg`
  (chosen on the validation ratings, never on the test ratings);
- item-knn: the classical neighbourhood model on top of those biases (Koren 2010's kNN with baseline, Surprise's
  KNNBaseline): a rating is its bias prediction plus the similarity-weighted mean residual of the user's
  `neighbours` ratings of the items most similar to it; similarity is the shrunk Pearson correlation of the items'
  bias residuals over their common raters; `neighbours` chosen on the validation ratings;
- Bayesian factorization machines (Rendle et al. 2019, "On the Difficulty of Evaluating Baselines"; the `myfm`
  package), Gibbs-sampled, so nothing is tuned: `bmf` (user and item one-hot: Bayesian matrix factorization) and
  `bfm` (plus each user's rated items and each item's raters, normalised by 1/sqrt(count): Rendle's "flipped"
  SVD++ without time); optionally `bfm-probit`, bfm as an ordered probit model of the star levels. They train on
  the training ratings alone; their implicit features come from those rows too, never from validation or test
  rows, so their validation predictions are as honest as any model's.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

import data_processor
import metrics
import reporting
import utils

BAYES_RANK = 32  # factor dimension
BAYES_ITERATIONS = 300  # Gibbs samples drawn; the posterior predictive mean averages those after the burn-in
BAYES_BURN_IN = 100
BAYES_SEED = 42

BIAS_REGULARISATION = [1.0, 3.0, 5.0, 10.0, 20.0, 40.0]  # candidates, picked on validation
BIAS_ITERATIONS = 15


def fit_biases(users, items, ratings, n_users, n_items, reg, iterations=BIAS_ITERATIONS):
    """Minimise sum (r - mu - b_u - b_i)^2 + reg * (|b_u|^2 + |b_i|^2) by exact alternating updates."""
    mean = float(ratings.mean())
    user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
    user_count = np.bincount(users, minlength=n_users)
    item_count = np.bincount(items, minlength=n_items)
    for _ in range(iterations):
        item_bias = np.bincount(items, ratings - mean - user_bias[users], n_items) / (item_count + reg)
        user_bias = np.bincount(users, ratings - mean - item_bias[items], n_users) / (user_count + reg)
    return mean, user_bias, item_bias


def bayesian_blocks(data, train, implicit):
    """myfm's relation blocks: a row per user (its one-hot, and with `implicit` the items it rated in `train`,
    normalised) and a row per item (its one-hot, and the users who rated it)."""
    import scipy.sparse

    users, items = data.users[train], data.items[train]

    def block(count, own, other, other_count):
        one_hot = scipy.sparse.identity(count, format="csr")
        if not implicit:
            return one_hot
        rated = scipy.sparse.csr_matrix((np.ones(len(own)), (own, other)), shape=(count, other_count))
        rated = scipy.sparse.diags(1 / np.sqrt(np.maximum(rated.getnnz(axis=1), 1))) @ rated
        return scipy.sparse.hstack([one_hot, rated], format="csr")

    return block(data.n_users, users, items, data.n_items), block(data.n_items, items, users, data.n_users)


def fit_bayesian(data, split, implicit, probit=False, rank=BAYES_RANK, iterations=BAYES_ITERATIONS,
                 burn_in=BAYES_BURN_IN):
    """A Gibbs-sampled factorization machine on the training ratings. Returns predict(users, items), the posterior
    predictive mean. With `probit`, an ordered probit model of the rating levels (whole or half stars) instead of a
    regression, predicting the expected level. On ML-100K u1 (training rows alone): bmf 0.9140, bfm 0.8930, bfm
    with ordered probit 0.8913 test RMSE, in 0.5, 1 and 1.7 minutes."""
    if not sys.stderr.isatty():  # in a log file: one line every few seconds (ours) rather than tqdm's redrawn bar
        os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is first imported, which myfm does
    import myfm
    import scipy.sparse

    user_block, item_block = bayesian_blocks(data, split.train, implicit)

    def relations(users, items):
        return [myfm.RelationBlock(users.astype(np.int64), user_block),
                myfm.RelationBlock(items.astype(np.int64), item_block)]

    def no_features(count):
        return scipy.sparse.csr_matrix((count, 0))

    train, (low, high, step) = split.train, data.scale
    levels = np.arange(low, high + step / 2, step) if probit else None
    machine = (myfm.MyFMOrderedProbit if probit else myfm.MyFMRegressor)(rank=rank, random_seed=BAYES_SEED)
    targets = (np.round((data.ratings[train] - low) / step).astype(np.int64) if probit
               else data.ratings[train].astype(np.float64))
    progress = utils.Progress(iterations, "Gibbs sample") if not sys.stderr.isatty() else None

    def count_sample(*state):
        progress.add()
        return False, None  # go on; no message

    machine.fit(no_features(len(train)), targets, X_rel=relations(data.users[train], data.items[train]),
                n_iter=iterations, n_kept_samples=iterations - burn_in, callback=count_sample if progress else None)
    if progress:
        progress.done()
    if probit:
        return lambda users, items: machine.predict_proba(no_features(len(users)), relations(users, items)) @ levels
    return lambda users, items: machine.predict(no_features(len(users)), relations(users, items))


def select_biases(data, split, candidates=BIAS_REGULARISATION):
    """The user+item bias model whose L2 strength (among `candidates`) scores best on the validation ratings.
    Returns (reg, predict, score_users)."""
    scored = []
    for reg in candidates:
        mu, user_bias, item_bias = fit_biases(data.users[split.train], data.items[split.train],
                                              data.ratings[split.train].astype(np.float64), data.n_users,
                                              data.n_items, reg)
        val_rmse = validation_rmse(data, split, lambda users, items: mu + user_bias[users] + item_bias[items])
        scored.append((val_rmse, reg, mu, user_bias, item_bias))
    _, reg, mu, user_bias, item_bias = min(scored, key=lambda row: row[0])
    return (reg, lambda users, items: mu + user_bias[users] + item_bias[items],
            lambda users: mu + user_bias[users, None] + item_bias[None, :])


def validation_rmse(data, split, predict):
    """Global RMSE of `predict(users, items)` on the split's validation ratings: what every choice looks at."""
    val = split.val
    return metrics.global_rmse(data.ratings[val], predict(data.users[val], data.items[val]), data.scale[:2])


KNN_NEIGHBOURS = [10, 20, 40]  # candidates, picked on validation
KNN_SHRINKAGE = 100.0  # the similarity of items with n common raters is shrunk by n / (n + this)
KNN_ITEM_BLOCK = 2048  # items whose similarities are computed at a time (memory: 4 x items x this x 8 bytes)
KNN_MAX_ITEMS = 30_000  # more items are skipped: the similarity matrix (items^2 x 4 bytes) would pass 3.6 GB


def bias_residuals(data, train, baseline):
    """The training ratings minus the bias model's predictions, as a sparse [users, items] CSR matrix."""
    import scipy.sparse

    users, items = data.users[train], data.items[train]
    return scipy.sparse.csr_matrix((data.ratings[train] - baseline(users, items), (users, items)),
                                   shape=(data.n_users, data.n_items))


def item_similarities(residual):
    """[items, items] float32 from the bias residuals (bias_residuals): the Pearson correlation of two items'
    residuals over the users who rated both, shrunk towards 0 when they are few; 0 on the diagonal, so that an
    item is never its own neighbour."""
    n_items = residual.shape[1]
    residual = residual.tocsc()
    rated = residual.copy()
    rated.data[:] = 1.0  # every rating, a residual of exactly 0 too
    squared = residual.multiply(residual).tocsc()
    similarity = np.empty((n_items, n_items), np.float32)
    progress = utils.Progress(n_items, "item similarity row")
    for start in range(0, n_items, KNN_ITEM_BLOCK):
        block = slice(start, min(start + KNN_ITEM_BLOCK, n_items))
        products = (residual.T @ residual[:, block]).toarray()
        common = (rated.T @ rated[:, block]).toarray()
        # the sums of squares of each item's residuals over the raters it shares with each item of the block
        squares, squares_of_block = (squared.T @ rated[:, block]).toarray(), (rated.T @ squared[:, block]).toarray()
        similarity[:, block] = (products / np.sqrt(np.maximum(squares * squares_of_block, 1e-12))
                                * common / (common + KNN_SHRINKAGE))
        progress.add(block.stop - start)
    progress.done()
    np.fill_diagonal(similarity, 0.0)
    return similarity


def knn_predictor(baseline, residual, similarity, neighbours):
    """predict(users, items) of the kNN model: baseline(users, items) plus, for each pair, the mean of the user's
    training residuals (bias_residuals) at the `neighbours` rated items most similar to the item, weighted by
    (positive) similarity; 0.001 added to the weights' sum leaves the baseline where no neighbour is similar. Pairs
    are taken a user at a time."""

    def predict(query_users, query_items):
        predictions = baseline(query_users, query_items)
        order = np.argsort(query_users, kind="stable")
        bounds = np.searchsorted(query_users[order], np.arange(residual.shape[0] + 1))
        for user in np.flatnonzero(np.diff(bounds)):
            queries = order[bounds[user]:bounds[user + 1]]
            rated = slice(residual.indptr[user], residual.indptr[user + 1])
            weights = similarity[np.ix_(query_items[queries], residual.indices[rated])]
            residuals = np.broadcast_to(residual.data[rated], weights.shape)
            if weights.shape[1] > neighbours:
                nearest = np.argpartition(-weights, neighbours - 1, axis=1)[:, :neighbours]
                weights, residuals = np.take_along_axis(weights, nearest, 1), residual.data[rated][nearest]
            weights = np.maximum(weights, 0.0)
            predictions[queries] += (weights * residuals).sum(axis=1) / (weights.sum(axis=1) + 1e-3)
        return predictions

    return predict


def select_item_knn(data, split, bias_candidates=BIAS_REGULARISATION, neighbour_candidates=KNN_NEIGHBOURS):
    """The kNN model on the bias model that `select_biases` picks, with the number of neighbours (among
    `neighbour_candidates`) that scores best on the validation ratings. Returns (reg, neighbours, predict)."""
    reg, baseline, _ = select_biases(data, split, bias_candidates)
    residual = bias_residuals(data, split.train, baseline)
    similarity = item_similarities(residual)
    if len(neighbour_candidates) == 1:
        return reg, neighbour_candidates[0], knn_predictor(baseline, residual, similarity, neighbour_candidates[0])
    scored = []
    for neighbours in neighbour_candidates:
        predict = knn_predictor(baseline, residual, similarity, neighbours)
        scored.append((validation_rmse(data, split, predict), neighbours, predict))
    _, neighbours, predict = min(scored, key=lambda row: row[0])
    return reg, neighbours, predict


# Every baseline, in the order they run; all but bfm-probit by default (it takes as long again as bfm).
BASELINES = ("global mean", "user+item bias", "item-knn", "bmf", "bfm", "bfm-probit")
DEFAULT_BASELINES = BASELINES[:5]


def baselines(data, split, names=DEFAULT_BASELINES, chosen=None):
    """The named baselines fitted on the training ratings, in turn: (name, predict(users, items), score_users or
    None, facts to report); bfm-probit (bfm as an ordered probit model) only for ratings in steps. `chosen` ({name:
    its train-only result}, for a refit): the settings validation chose (the bias model's strength, the kNN's and
    its number of neighbours), not chosen again. The kNN and Bayesian ones have no ranking metrics: scoring every
    item for every user is out of proportion for a baseline (neighbours per pair, hundreds of samples)."""
    chosen = chosen or {}
    if "global mean" in names:
        mean = float(data.ratings[split.train].mean())
        yield "global mean", lambda users, items: np.full(len(users), mean), None, {}
    if "user+item bias" in names:
        bias = chosen.get("user+item bias")
        reg, predict, score_users = select_biases(data, split, [bias["reg"]] if bias else BIAS_REGULARISATION)
        yield "user+item bias", predict, score_users, {"reg": reg}
    if "item-knn" in names and data.n_items > KNN_MAX_ITEMS:
        print(f"item-knn skipped: {data.n_items:,} items would need a {data.n_items ** 2 * 4 / 1e9:.1f} GB similarity "
              f"matrix (more than KNN_MAX_ITEMS = {KNN_MAX_ITEMS:,} items in baseline_models.py).")
    elif "item-knn" in names:
        knn = chosen.get("item-knn")
        settings = ([knn["reg"]], [knn["neighbours"]]) if knn else (BIAS_REGULARISATION, KNN_NEIGHBOURS)
        reg, neighbours, predict = select_item_knn(data, split, *settings)
        yield "item-knn", predict, None, {"reg": reg, "neighbours": neighbours}
    for name, implicit in (("bmf", False), ("bfm", True)):
        if name in names:
            yield name, fit_bayesian(data, split, implicit), None, {}
    if "bfm-probit" in names and data.scale[2]:
        yield "bfm-probit", fit_bayesian(data, split, True, probit=True), None, {}


def evaluate_baselines(data, split, save_to=None, subfolder="", names=DEFAULT_BASELINES, keep_finished=False,
                       refit_of=None):
    """Both RMSEs (validation and test) of the named baselines, and the ranking metrics (test) where they have
    them. Returns a list of {'name', 'reg' and 'neighbours' where chosen, metric: value}. With `save_to`, each
    baseline's folder there (save_to/bfm/subfolder, say) holds its predictions, as a run's, for blend.py; with
    `keep_finished`, a baseline already there is read back instead of fitted again (--compare --resume). With
    `refit_of` ({name: its train-only result}), the refit protocol: each fitted on the training and validation
    ratings together, with the settings validation chose; no validation metrics (trained on)."""
    if keep_finished and save_to is not None:
        finished = {name: reporting.finished_result(Path(save_to) / baseline_folder(name) / subfolder)
                    for name in names}
        fitted = {result["name"]: result for result in evaluate_baselines(
            data, split, save_to, subfolder, [name for name in names if not finished[name]], refit_of=refit_of)}
        return [finished[name] or fitted[name] for name in names if finished[name] or name in fitted]
    results = []
    if refit_of:
        split = data_processor.refit_split(split)
    started = time.perf_counter()
    for name, predict, score_users, facts in baselines(data, split, names, refit_of):
        train_seconds = round(time.perf_counter() - started, 2)  # fitting (the generator fits before it yields)
        predictions = metrics.predict_parts(data, split, predict)
        result = metrics.evaluate_predictions(data, split, predictions, score_users)
        if refit_of:
            result = {**reporting.without_validation(result), "refit": True}
        results.append({"name": name, **facts, **result, "train_seconds": train_seconds,
                        "machines": [utils.cpu_description()]})  # myfm and NumPy: the CPU alone
        if save_to is not None:
            reporting.save_baseline_run(Path(save_to) / baseline_folder(name) / subfolder, name, data, split,
                                        predictions, results[-1])
        started = time.perf_counter()
    return results


def baseline_folder(name):
    return name.replace("+", "-").replace(" ", "-")
