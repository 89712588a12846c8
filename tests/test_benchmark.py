"""benchmark.py end to end on small synthetic data: it must print its JSON line with every path measured."""

import json

import benchmark


def test_benchmark_prints_every_path_and_the_ratios(movielens_dir, capsys):
    assert benchmark.main_benchmark(["--epochs", "2", "--rounds", "2", "--data-dir", str(movielens_dir)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["epochs"] == 2 and result["rounds"] == 2 and result["data_prep_seconds_warm"] > 0
    for path in ("dense", "fast", "fast_bfloat16"):
        assert result[path]["seconds_per_epoch"] > 0 and result[path]["peak_memory_mb"] > 0
    # float32 on both paths: the same model, so the same test metrics after the same epochs
    assert result["test_rmse_difference_fast_vs_dense"] < 1e-3
    assert result["speedup_fast_vs_dense"] == round(
        result["dense"]["seconds_per_epoch"] / result["fast"]["seconds_per_epoch"], 2)
