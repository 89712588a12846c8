"""blend.py: the blend recovers known weights, refuses members of other data or splits, never fits on a test
rating, and works on real folders written by baselines.py."""

import numpy as np
import pytest

import baseline_models
import blend
import blending
import data_processor
from datasets import splits
from conftest import low_rank_ratings, write_movielens
from config import ConfigError


def member(folder, split, predictions, data_files=None):
    return blending.Member(folder, {"dataset": "synthetic", "data_files": data_files or {}}, split, predictions)


def test_blend_recovers_known_weights():
    rng = np.random.default_rng(0)
    first, second = rng.uniform(1.5, 4.5, 5000), rng.uniform(1.5, 4.5, 5000)
    ratings = 0.4 + 0.6 * first + 0.3 * second + rng.normal(0, 0.01, 5000)
    model = blending.fit_blend([first, second], ratings, (1.0, 5.0))
    np.testing.assert_allclose(model.coef_, [0.6, 0.3], atol=0.01)
    assert model.intercept_ == pytest.approx(0.4, abs=0.03)


def test_blend_refuses_members_of_other_data_or_another_split(tmp_path):
    data = low_rank_ratings()
    split, other = splits.random_split(data, 1), splits.random_split(data, 2)
    predictions = {"val": np.full(len(split.val), 3.0), "test": np.full(len(split.test), 3.0)}
    with pytest.raises(ConfigError, match="another split"):
        blending.check_members([member("a", split, predictions), member("b", other, predictions)])
    with pytest.raises(ConfigError, match="other data"):
        blending.check_members([member("a", split, predictions), member("b", split, predictions, {"x": "1"})])


def test_blend_never_fits_on_a_test_rating():
    data = low_rank_ratings()
    split = splits.random_split(data, 3)
    rng = np.random.default_rng(1)
    members = [member(name, split, {part: data.ratings[getattr(split, part)] + rng.normal(0, 0.5, len(
        getattr(split, part))) for part in ("val", "test")}) for name in ("a", "b")]
    before = blending.blend(members, data)[0]
    changed = data_processor.Ratings(**{**vars(data), "ratings": data.ratings.copy()})
    changed.ratings[split.test] = 6 - changed.ratings[split.test]
    after = blending.blend(members, changed)[0]
    assert (after["intercept"], [row["weight"] for row in after["members"]]) == (
        before["intercept"], [row["weight"] for row in before["members"]])
    assert before["blend"]["test_rmse"] < min(row["test_rmse"] for row in before["members"])


def test_blend_of_baseline_folders_per_split(tmp_path, capsys):
    folder = tmp_path / "ml-1m"
    write_movielens(folder)
    data = data_processor.load_data("ml-1m", folder)
    for index, seed in enumerate((1994, 1995)):
        split = data_processor.split_ratings(data, "random", seed)
        baseline_models.evaluate_baselines(data, split, tmp_path / "runs", f"run-{index + 1}")
    runs = tmp_path / "runs"
    assert blend.main([str(runs / "user-item-bias"), str(runs / "bfm"), "--output", str(tmp_path / "b")]) == 0
    output = capsys.readouterr().out
    assert "over 2 split(s)" in output and (tmp_path / "b" / "blend.json").is_file()
    assert blend.main([str(runs / "bfm" / "run-1"), str(runs / "bmf" / "run-2")]) == 2
    assert "another split" in capsys.readouterr().err
