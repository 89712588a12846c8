"""The baselines: each Bayesian factorization machine beats the bias baseline on low-rank data, and none of them
reads a validation or test rating while fitting."""

import numpy as np

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
    assert set(results) == {"global mean", "user+item bias", "bmf", "bfm", "bfm-probit"}
    for name in ("bmf", "bfm", "bfm-probit"):
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


def test_baselines_only_fits_and_keeps_the_named_ones(movielens_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert baselines.main(["--data-dir", str(movielens_dir), "--split", "random", "--results-dir", str(runs),
                           "--only", "bfm-probit", "user-item-bias"]) == 0
    assert sorted(folder.name for folder in runs.iterdir()) == ["bfm-probit", "user-item-bias"]
    table = capsys.readouterr().out
    assert "| bfm-probit |" in table and "| bmf |" not in table and "| global mean |" not in table
