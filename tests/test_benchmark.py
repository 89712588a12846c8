"""benchmark.py end to end on small synthetic data: it must print its JSON line with every path measured."""

import json

import pytest

import benchmark
import data_processor


def test_benchmark_prints_every_path_and_the_ratios(movielens_dir, capsys):
    assert benchmark.main_benchmark(["--epochs", "2", "--rounds", "1", "--data-dir", str(movielens_dir)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["epochs"] == 2 and result["rounds"] == 1 and result["data_prep_seconds_warm"] > 0
    for path in ("dense", "fast", "fast_bfloat16"):
        assert result[path]["seconds_per_epoch"] > 0 and result[path]["peak_memory_mb"] > 0
    # float32 on both paths: the same model, so the same test metrics after the same epochs
    assert result["test_rmse_difference_fast_vs_dense"] < 1e-3
    assert result["speedup_fast_vs_dense"] == round(
        result["dense"]["seconds_per_epoch"] / result["fast"]["seconds_per_epoch"], 2)


@pytest.mark.parametrize("name", ["ml-20m", "netflix"])
def test_synthetic_scale_benchmark_writes_official_files_and_reports(tmp_path, capsys, name):
    folder = tmp_path / name
    assert benchmark.main_benchmark(["--synthetic", name, "--data-dir", str(folder), "--scale", "0.0005",
                                     "--epoch-fraction", "0.5"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("prep_seconds", "peak_memory_mb", "n_ratings", "epoch_seconds", "epoch_peak_memory_mb"):
        assert result[key] > 0, key
    expected = {"ml-20m": 10000, "netflix": 50240}[name]
    assert abs(result["n_ratings"] - expected) <= 1
    data = data_processor.load_dataset(name, folder)  # the project's own reader accepts the files
    assert len(data.ratings) == result["n_ratings"]


def test_lbfgs_benchmark_times_both_objectives_and_both_solvers(movielens_dir, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ML100K_DIR", str(tmp_path / "no-ml-100k"))  # ML-1M's synthetic copy alone
    assert benchmark.main_benchmark(["--lbfgs", "--rounds", "1", "--lbfgs-iterations", "3",
                                     "--data-dir", str(movielens_dir)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "ml-100k" not in report
    result = report["ml-1m"]
    known, dense = result["known_ratings_seconds_per_evaluation"], result["dense_seconds_per_evaluation"]
    assert known > 0 and dense > 0 and result["speedup_known_ratings_vs_dense"] == round(dense / known, 2)
    assert result["objective_relative_difference"] < 1e-5  # the same objective, computed two ways
    # Both solvers ran the epoch from the same weights, lowered the objective and report consistent figures.
    scipy_epoch, tensorflow_epoch = result["scipy"], result["tensorflow"]
    for epoch in (scipy_epoch, tensorflow_epoch):
        assert epoch["seconds_per_epoch"] > 0 and epoch["evaluations_per_iteration"] >= 1
        assert 0 < epoch["objective_share"] and epoch["val_rmse"] > 0
    assert abs(scipy_epoch["objective"] - tensorflow_epoch["objective"]) < 0.05 * scipy_epoch["objective"]
    assert result["speedup_tensorflow_vs_scipy"] == round(
        scipy_epoch["seconds_per_epoch"] / tensorflow_epoch["seconds_per_epoch"], 2)
