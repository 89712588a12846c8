"""The baselines: each Bayesian factorization machine and the item kNN beat the bias baseline on low-rank data, the
kNN computes what its definition says, and none of them reads a validation or test rating while fitting."""

import numpy as np
import pytest

import baseline_models
import baselines
import data_processor
from datasets import splits
import metrics
from conftest import low_rank_ratings


def test_bayesian_baselines_beat_the_bias_baseline_on_low_rank_data():
    data = low_rank_ratings()
    split = splits.random_split(data, 3)
    results = {result["name"]: result
               for result in baseline_models.evaluate_baselines(data, split, names=baseline_models.BASELINES)}
    assert set(results) == {"global mean", "user+item bias", "item-knn", "bmf", "bfm", "bfm-probit"}
    for name in ("item-knn", "bmf", "bfm", "bfm-probit"):
        assert results[name]["test_rmse"] < results["user+item bias"]["test_rmse"] - 0.05, results


def test_bayesian_fit_never_reads_a_validation_or_test_rating():
    data = low_rank_ratings(seed=1)
    split = splits.random_split(data, 4)
    predict = baseline_models.fit_bayesian(data, split, implicit=True, iterations=30, burn_in=10)
    before = predict(data.users[split.test], data.items[split.test])
    scrambled = data_processor.Ratings(**{**vars(data), "ratings": data.ratings.copy()})
    held_out = np.concatenate([split.val, split.test])
    scrambled.ratings[held_out] = 6 - scrambled.ratings[held_out]  # every held-out rating changed
    again = baseline_models.fit_bayesian(scrambled, split, implicit=True, iterations=30, burn_in=10)
    np.testing.assert_allclose(again(data.users[split.test], data.items[split.test]), before, rtol=1e-6)
    assert metrics.global_rmse(data.ratings[split.test], before) < 1.2


def test_item_knn_is_its_definition_computed_pair_by_pair():
    """Similarities and predictions against a direct computation: the shrunk Pearson correlation of two items'
    residuals over their common raters; a prediction adds the positive-similarity-weighted mean residual of the
    user's most similar rated items."""
    data = low_rank_ratings(n_users=30, n_items=12, density=0.5, seed=5)
    split = splits.random_split(data, 3)
    train = split.train
    users, items = data.users[train], data.items[train]
    baseline = lambda users, items: 3.0 + 0.1 * users - 0.05 * items  # noqa: E731  any baseline will do
    residual = np.full((data.n_users, data.n_items), np.nan)
    residual[users, items] = data.ratings[train] - baseline(users, items)
    similarity = baseline_models.item_similarities(baseline_models.bias_residuals(data, train, baseline))
    for i in range(data.n_items):
        for j in range(data.n_items):
            common = ~np.isnan(residual[:, i]) & ~np.isnan(residual[:, j])
            a, b = residual[common, i], residual[common, j]
            expected = 0.0 if i == j else a @ b / np.sqrt((a @ a) * (b @ b)) * common.sum() / (common.sum() + 100)
            assert similarity[i, j] == pytest.approx(expected, abs=1e-5)
    predict = baseline_models.knn_predictor(baseline, baseline_models.bias_residuals(data, train, baseline),
                                            similarity, neighbours=3)
    test_users, test_items = data.users[split.test], data.items[split.test]
    for user, item, predicted in zip(test_users, test_items, predict(test_users, test_items)):
        rated = np.flatnonzero(~np.isnan(residual[user]))
        nearest = rated[np.argsort(-similarity[item, rated], kind="stable")[:3]]
        weights = np.maximum(similarity[item, nearest], 0)
        expected = baseline(user, item) + weights @ residual[user, nearest] / (weights.sum() + 1e-3)
        assert predicted == pytest.approx(expected, abs=1e-5)


def test_item_knn_never_reads_a_test_rating_and_chooses_on_validation():
    data = low_rank_ratings(seed=2)
    split = splits.random_split(data, 4)
    reg, neighbours, predict = baseline_models.select_item_knn(data, split)
    before = predict(data.users[split.test], data.items[split.test])
    scrambled = data_processor.Ratings(**{**vars(data), "ratings": data.ratings.copy()})
    scrambled.ratings[split.test] = 6 - scrambled.ratings[split.test]
    again = baseline_models.select_item_knn(scrambled, split)
    assert again[:2] == (reg, neighbours) and neighbours in baseline_models.KNN_NEIGHBOURS
    np.testing.assert_allclose(again[2](data.users[split.test], data.items[split.test]), before)


def test_item_knn_is_skipped_with_a_note_where_its_similarities_would_not_fit(monkeypatch, capsys):
    monkeypatch.setattr(baseline_models, "KNN_MAX_ITEMS", 50)
    data = low_rank_ratings()
    results = baseline_models.evaluate_baselines(data, splits.random_split(data, 3),
                                                 names=("user+item bias", "item-knn"))
    assert [result["name"] for result in results] == ["user+item bias"]
    assert "item-knn skipped: 80 items would need a 0.0 GB similarity matrix" in capsys.readouterr().out


def test_baselines_only_fits_and_keeps_the_named_ones(movielens_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert baselines.main(["--data-dir", str(movielens_dir), "--split", "random", "--results-dir", str(runs),
                           "--only", "bfm-probit", "user-item-bias"]) == 0
    assert sorted(folder.name for folder in runs.iterdir()) == ["bfm-probit", "user-item-bias"]
    table = capsys.readouterr().out
    assert "| bfm-probit |" in table and "| bmf |" not in table and "| global mean |" not in table
