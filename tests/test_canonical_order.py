"""A split depends on the set of ratings alone: the same ratings in another line order or layout give the same
splits, metrics and fingerprint, and evaluate.py and blend.py read such a copy; other ratings are refused by name."""

import json

import numpy as np
import pytest

import baseline_models
import blend
import data_processor
from datasets import own_csv
import evaluate
import main
from conftest import REAL_DATA_DIR, write_ml100k, write_movielens

TINY = ["--layers", "16,8,16", "--dropout", "0.2", "--batch-size", "16", "--learning-rate", "0.01", "--epochs", "2"]


def shuffle_lines(path, seed=5, fields=None):
    """The file's lines in another order (and, given `fields`, only the first `fields` of each)."""
    lines = path.read_text(encoding="latin-1").splitlines()
    if fields:
        lines = ["::".join(line.split("::")[:fields]) for line in lines]
    np.random.default_rng(seed).shuffle(lines)
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")


def splits_of(data):
    return {(split, seed): data_processor.split_ratings(data, split, seed)
            for split in ("stratified", "random") for seed in (1994, 7)}


def test_shuffled_lines_in_the_other_layout_give_identical_splits_and_metrics(tmp_path):
    original = write_movielens(tmp_path / "original")
    copy = write_movielens(tmp_path / "copy")
    shuffle_lines(copy / "ratings.dat", fields=3)  # no timestamps, as our ML-1M copy; lines shuffled
    first, second = (data_processor.load_dataset("ml-1m", folder) for folder in (original, copy))
    assert data_processor.ratings_fingerprint(first) == data_processor.ratings_fingerprint(second)
    assert first.files != second.files
    for key, split in splits_of(first).items():
        other = splits_of(second)[key]
        for part in ("train", "val", "test"):
            assert np.array_equal(getattr(split, part), getattr(other, part)), (key, part)
    results = {}
    for name, folder in (("original", original), ("copy", copy)):
        assert main.main(["--data-dir", str(folder), "--split", "random", "--results-dir", str(tmp_path / name),
                          *TINY]) == 0
        results[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    for key in ("test_rmse", "test_masked_rmse", "val_rmse"):
        assert results["original"][key] == results["copy"][key]


def test_evaluate_accepts_a_reordered_copy_and_refuses_a_changed_rating(tmp_path, capsys):
    folder = write_movielens(tmp_path / "ml-1m")
    run = tmp_path / "run"
    assert main.main(["--data-dir", str(folder), "--results-dir", str(run), *TINY]) == 0
    recorded = json.loads((run / "metrics.json").read_text())
    shuffle_lines(folder / "ratings.dat")
    capsys.readouterr()
    assert evaluate.main(["--results-dir", str(run)]) == 0
    assert f"{recorded['test_rmse']:.4f}" in capsys.readouterr().out
    lines = (folder / "ratings.dat").read_text().splitlines()
    user, movie, rating, stamp = lines[3].split("::")
    lines[3] = "::".join([user, movie, "1" if rating != "1" else "2", stamp])
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    assert evaluate.main(["--results-dir", str(run)]) == 2
    error = capsys.readouterr().err
    assert "are not the ratings" in error and "rating_sum" in error and str(folder) in error


def test_ml100k_official_splits_ignore_the_files_line_order(tmp_path):
    original, copy = write_ml100k(tmp_path / "a"), write_ml100k(tmp_path / "b")
    for name in ["u.data", "u1.base", "u1.test"]:
        lines = (copy / name).read_text().splitlines()
        np.random.default_rng(len(name)).shuffle(lines)
        (copy / name).write_text("\n".join(lines) + "\n")
    first, second = (data_processor.load_dataset("ml-100k", folder) for folder in (original, copy))
    one, other = (data_processor.split_ratings(data, "u1", 1994) for data in (first, second))
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(one, part), getattr(other, part))


def test_own_csv_ids_that_are_numbers_sort_as_numbers(tmp_path):
    rows = [(user, item, (user + item) % 5 + 1) for user in (2, 10, 1) for item in (30, 4, 200)]
    ordered = tmp_path / "ordered.csv"
    ordered.write_text("".join(f"{u},{i},{r}\n" for u, i, r in rows))
    data = data_processor.load_data("csv", None, own_csv.CsvFormat(str(ordered)))
    assert data.user_ids.tolist() == ["1", "2", "10"] and data.item_ids.tolist() == ["4", "30", "200"]
    assert data.users.tolist() == sorted(data.users.tolist())  # canonical: by user, then item
    reversed_file = tmp_path / "reversed.csv"
    reversed_file.write_text("".join(f"{u},{i},{r}\n" for u, i, r in reversed(rows)))
    other = data_processor.load_data("csv", None, own_csv.CsvFormat(str(reversed_file)))
    assert data_processor.ratings_fingerprint(other) == data_processor.ratings_fingerprint(data)


def test_real_ml1m_is_already_in_the_canonical_order():
    """Our ML-1M copy is sorted by user, then movie: its canonical order is the file's own, so every split drawn
    before the canonical order existed is unchanged."""
    path = REAL_DATA_DIR / "ratings.dat"
    if not path.is_file():
        pytest.skip(f"MovieLens-1M not found in {REAL_DATA_DIR}")
    users, movies = np.array([line.split(b"::")[:2] for line in path.read_bytes().splitlines()], dtype=np.int64).T
    pairs = users * 10_000 + movies
    assert (np.diff(pairs) > 0).all()


def test_blend_reads_moved_reordered_data_and_refuses_other_ratings(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MOVIELENS_DIR", raising=False)
    monkeypatch.setattr(data_processor, "DATA_DIR", tmp_path / "no-data-here")
    folder = write_movielens(tmp_path / "ml-1m")
    data = data_processor.load_data("ml-1m", folder)
    baseline_models.evaluate_baselines(data, data_processor.split_ratings(data, "random", 1994), tmp_path / "runs")
    members = [str(tmp_path / "runs" / name) for name in ("user-item-bias", "bmf")]
    assert blend.main([*members, "--output", str(tmp_path / "before")]) == 0
    before = json.loads((tmp_path / "before" / "blend.json").read_text())["test_rmse_mean"]
    moved = folder.rename(tmp_path / "elsewhere")
    assert blend.main([*members, "--output", str(tmp_path / "lost")]) == 2
    assert str(folder) in capsys.readouterr().err
    shuffle_lines(moved / "ratings.dat", fields=3)
    assert blend.main([*members, "--data-dir", str(moved), "--output", str(tmp_path / "after")]) == 0
    assert json.loads((tmp_path / "after" / "blend.json").read_text())["test_rmse_mean"] == before
    monkeypatch.setenv("MOVIELENS_DIR", str(moved))  # where a new run would look: found there without a flag
    assert blend.main([*members, "--output", str(tmp_path / "found")]) == 0
    assert json.loads((tmp_path / "found" / "blend.json").read_text())["test_rmse_mean"] == before
    lines = (moved / "ratings.dat").read_text().splitlines()
    user, movie, rating = lines[0].split("::")
    lines[0] = "::".join([user, movie, "1" if rating != "1" else "2"])
    (moved / "ratings.dat").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert blend.main([*members, "--data-dir", str(moved), "--output", str(tmp_path / "refused")]) == 2
    assert "are not the ratings" in capsys.readouterr().err
