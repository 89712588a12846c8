"""Simple baselines on the same split, to put the autoencoders' numbers in context (baselines.py and main.py's
--compare run them):

- global mean: every rating predicted as the mean training rating;
- user+item biases: mean + b_user + b_item, fitted by alternating least squares with L2 strength `reg`
  (chosen on the validation ratings, never on the test ratings).
"""

import numpy as np

import metrics

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


def evaluate_baselines(data, split):
    """Both RMSEs (validation and test) and the ranking metrics (test) of both baselines. Returns a list of
    {'name', metric: value}; the bias model's entry also has its 'reg'."""
    train = split.train
    train_users, train_items, train_ratings = data.users[train], data.items[train], data.ratings[train]
    mean = float(train_ratings.mean())
    results = [{"name": "global mean", **metrics.evaluate_predictor(
        data, split, lambda users, items: np.full(len(users), mean), None)}]
    best = None
    for reg in BIAS_REGULARISATION:  # chosen on the validation ratings; ranking metrics only for the chosen one
        fitted = fit_biases(train_users, train_items, train_ratings.astype(np.float64), data.n_users,
                            data.n_items, reg)
        val = split.val
        predictions = fitted[0] + fitted[1][data.users[val]] + fitted[2][data.items[val]]
        val_rmse = metrics.global_rmse(data.ratings[val], predictions, data.scale[:2])
        if best is None or val_rmse < best[0]:
            best = (val_rmse, reg, fitted)
    _, reg, (mu, user_bias, item_bias) = best
    results.append({"name": "user+item bias", "reg": reg, **metrics.evaluate_predictor(
        data, split, lambda users, items: mu + user_bias[users] + item_bias[items],
        lambda users: mu + user_bias[users, None] + item_bias[None, :])})
    return results
