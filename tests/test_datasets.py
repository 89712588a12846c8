"""Every data set's format, every split's invariants and repeated runs, on small files the tests write; ML-100K's
official folder when it is found."""

import csv
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

import data_processor
from datasets import splits
import main
from conftest import PROJECT_DIR, write_ml10m, write_ml100k, write_ml20m, write_movielens, write_netflix
from data_processor import DataError

ML100K_DIR = Path(os.environ.get("ML100K_DIR", PROJECT_DIR / "data" / "ml-100k"))
TINY = ["--layers", "16,8,16", "--dropout", "0.2", "--batch-size", "16", "--learning-rate", "0.01"]


def test_ml100k_format(tmp_path):
    data = data_processor.load_dataset("ml-100k", write_ml100k(tmp_path / "ml-100k"))
    first = (tmp_path / "ml-100k" / "u.data").read_text().split("\n")[0].split("\t")
    assert data.user_ids[data.users[0]] == int(first[0]) and data.ratings[0] == float(first[2])
    assert data.timestamps[0] == int(first[3]) and data.titles[0] == "Film 1 (1991)"
    assert data.scale == (1.0, 5.0, 1.0)


def test_ml10m_half_stars_and_scale(tmp_path):
    folder = write_ml10m(tmp_path / "ml-10m")
    data = data_processor.load_dataset("ml-10m", folder)
    assert set(np.unique(data.ratings) * 2) <= set(range(1, 11)) and (data.ratings % 1 == 0.5).any()
    assert data.titles[0] == "Film 1: Part 1 (2001)"
    ratings = folder / "ratings.dat"
    ratings.write_text(ratings.read_text().replace("\n", "\n7::3::4.25::5\n", 1))
    with pytest.raises(DataError, match=r"line 2: Rating 4.25 is not 0.5-5 in steps of 0.5: '7::3::4.25::5'"):
        data_processor.load_dataset("ml-10m", folder)


def test_ml20m_csv_with_header_and_quoted_titles(tmp_path):
    folder = write_ml20m(tmp_path / "ml-20m")
    data = data_processor.load_dataset("ml-20m", folder)
    assert data.item_ids[0] == 1000 and data.titles[0] == "Film, The 1 (2001)"
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3.5,4\n1,x,3,4\n")
    with pytest.raises(DataError, match=r"ratings.csv, line 3: MovieID is not an integer: '1,x,3,4'"):
        data_processor.load_dataset("ml-20m", folder)


@pytest.mark.parametrize("layout", ["combined", "training_set"])
def test_netflix_both_layouts_give_the_same_ratings(tmp_path, layout):
    reference = data_processor.load_dataset("netflix", write_netflix(tmp_path / "combined", "combined"))
    data = data_processor.load_dataset("netflix", write_netflix(tmp_path / layout, layout))
    order = np.lexsort((data.items, data.users))
    reference_order = np.lexsort((reference.items, reference.users))
    for key in ("users", "items", "ratings", "timestamps"):
        np.testing.assert_array_equal(getattr(data, key)[order], getattr(reference, key)[reference_order])
    assert data.user_ids[0] == 1007 and data.titles[0] == "Film 1, with a comma"
    assert data.timestamps.min() == np.datetime64("2005-01-01", "s").astype(np.int64)


def test_netflix_errors_name_file_and_line(tmp_path):
    folder = write_netflix(tmp_path / "netflix")
    path = folder / "combined_data_1.txt"
    path.write_text("1:\n1007,3,2005-01-01\n1008,4\n")
    with pytest.raises(DataError, match=r"combined_data_1.txt, line 3: 2 fields where 3 .*'1008,4'"):
        data_processor.load_dataset("netflix", folder)
    with pytest.raises(DataError, match="cannot be downloaded.*training_set/mv_"):
        data_processor.ensure_dataset("netflix", tmp_path / "empty")


@pytest.mark.parametrize("line, expected", [
    ("1009,3,2005-02-30", "line 4: the date is not a real date"),  # an impossible date
    ("1009,3,12/31/2005", "line 4: the date is not a real date written YYYY-MM-DD"),  # another layout
    ("10-09,3,2005-01-01", "line 4: CustomerID is not a whole number"),  # a '-' that the fast path rewrites
    ("1009,-3,2005-01-01", "line 4: Rating is not a whole star from 1 to 5"),
    ("1009,x,2005-01-01", "line 4: Rating is not a whole star from 1 to 5"),
])
def test_netflix_lines_the_fast_parser_cannot_read_are_named(tmp_path, line, expected):
    folder = write_netflix(tmp_path / "netflix")
    path = folder / "combined_data_2.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + [line] + lines[3:]) + "\n")
    with pytest.raises(DataError) as error:
        data_processor.load_dataset("netflix", folder)
    assert f"combined_data_2.txt, {expected}" in str(error.value) and repr(line) in str(error.value)


def test_a_netflix_movie_file_must_hold_its_own_movie(tmp_path):
    folder = write_netflix(tmp_path / "netflix", layout="training_set")
    path = folder / "training_set" / "mv_0000003.txt"
    path.write_text(path.read_text().replace("3:", "4:", 1))
    with pytest.raises(DataError, match=r"mv_0000003.txt, line 1: MovieID 4 in the file of MovieID 3"):
        data_processor.load_dataset("netflix", folder)


def disjoint_and_complete(data, parts, complete=True):
    joined = np.concatenate([parts.train, parts.val, parts.test])
    assert len(np.unique(joined)) == len(joined)
    if complete:
        assert len(joined) == len(data.ratings)


def test_random_split_is_90_10_with_validation_from_the_90(movielens_dir):
    data = data_processor.load_dataset("ml-1m", movielens_dir)
    parts = data_processor.split_ratings(data, "random", 3)
    disjoint_and_complete(data, parts)
    n = len(data.ratings)
    assert len(parts.test) == round(0.1 * n)
    assert len(parts.val) == round(splits.RANDOM_VAL_FRACTION * (n - len(parts.test)))
    assert not np.array_equal(parts.test, data_processor.split_ratings(data, "random", 4).test)


def test_official_split_uses_the_files(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    data = data_processor.load_dataset("ml-100k", folder)
    for k in range(1, 6):
        parts = data_processor.split_ratings(data, f"u{k}", 1)
        disjoint_and_complete(data, parts)
        test_lines = (folder / f"u{k}.test").read_text().splitlines()
        assert len(parts.test) == len(test_lines)
        first = test_lines[0].split("\t")
        assert {(int(data.user_ids[data.users[i]]), int(data.item_ids[data.items[i]]))
                for i in parts.test} >= {(int(first[0]), int(first[1]))}
    with pytest.raises(DataError, match="ML-100K's official splits"):
        data_processor.split_ratings(data_processor.load_dataset("ml-1m", write_movielens(tmp_path / "m")), "u1", 1)


def test_time_split_trains_before_and_tests_after(movielens_dir, tmp_path):
    data = data_processor.load_dataset("ml-1m", movielens_dir)
    parts = data_processor.split_ratings(data, "time", 1)
    disjoint_and_complete(data, parts, complete=False)
    stamps = data.timestamps
    assert stamps[parts.train].max() < stamps[parts.test].min()
    assert stamps[parts.train].max() < stamps[parts.val].min()
    for key in ("users", "items"):  # the test users and items were all seen in training
        assert set(getattr(data, key)[parts.test]) <= set(getattr(data, key)[parts.train])
    assert abs(len(parts.val) - len(parts.test)) <= 1
    without = data_processor.load_dataset("ml-1m", write_movielens(tmp_path / "no-time", timestamps=False))
    with pytest.raises(DataError, match="needs timestamps"):
        data_processor.split_ratings(without, "time", 1)


def test_netflix_time_window(tmp_path):
    data = data_processor.load_dataset("netflix", write_netflix(tmp_path / "netflix"))
    parts = data_processor.split_ratings(data, "time", 1, time_window="1y")
    days = data.timestamps.astype("datetime64[s]").astype("datetime64[D]")
    assert days[parts.train].min() >= np.datetime64("2005-01-01") and \
        days[parts.train].max() <= np.datetime64("2005-05-31")
    tested = days[np.concatenate([parts.val, parts.test])]
    assert tested.min() >= np.datetime64("2005-06-01") and tested.max() <= np.datetime64("2005-06-30")


def test_repeats_write_a_summary_with_mean_and_std(tmp_path, capsys):
    folder = write_ml100k(tmp_path / "ml-100k")
    results = tmp_path / "results"
    assert main.main(["--dataset", "ml-100k", "--data-dir", str(folder), "--split", "u2", "--repeats", "2",
                      "--results-dir", str(results), "--epochs", "2", *TINY]) == 0
    summary = json.loads((results / "summary.json").read_text())
    assert [run["split"] for run in summary["runs"]] == ["u2", "u3"]
    values = [run["test_rmse"] for run in summary["runs"]]
    assert summary["test_rmse_mean"] == pytest.approx(np.mean(values))
    assert summary["test_rmse_std"] == pytest.approx(np.std(values, ddof=1))
    for key in ("test_masked_rmse_mean", "test_masked_rmse_std"):
        assert summary[key] > 0
    assert (results / "run-1" / "metrics.json").is_file() and (results / "run-2" / "metrics.json").is_file()
    assert "2 runs: test RMSE (global)" in capsys.readouterr().out


def test_official_split_flags_are_checked_before_any_work(tmp_path):
    for args, words in [(["--split", "u1"], "add --dataset ml-100k"),
                        (["--dataset", "ml-100k", "--split", "u4", "--repeats", "3"], "within u1-u5")]:
        with pytest.raises(main.ConfigError, match=words):
            main.parse_config(args)


def test_compare_with_repeats_reports_mean_and_std(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    results = tmp_path / "compare"
    assert main.main(["--compare", "deeprec,user-item-bias", "--dataset", "ml-100k", "--data-dir", str(folder),
                      "--split", "random", "--repeats", "2", "--results-dir", str(results), "--epochs", "1",
                      "--batch-size", "16"]) == 0
    table = (results / "comparison.md").read_text()
    assert "±" in table and "deeprec preset" in table and "user+item bias" in table
    with open(results / "comparison.csv") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    for row in rows.values():
        per_split = [float(value) for key, value in row.items() if key.startswith("test_rmse_seed ")]
        assert len(per_split) == 2 and float(row["test_rmse_mean"]) == pytest.approx(np.mean(per_split), abs=1e-4)
        assert float(row["test_rmse_std"]) == pytest.approx(np.std(per_split, ddof=1), abs=1e-4)


@pytest.mark.skipif(not (ML100K_DIR / "u.data").is_file(), reason="ML-100K's official folder not found")
def test_real_ml100k_official_split():
    data = data_processor.load_dataset("ml-100k", ML100K_DIR)
    assert (data.n_users, data.n_items, len(data.ratings)) == (943, 1682, 100000)
    parts = data_processor.split_ratings(data, "u1", 1994)
    assert len(parts.test) == 20000 and len(parts.train) + len(parts.val) == 80000


def test_download_verifies_against_the_published_md5(tmp_path, monkeypatch):
    import hashlib
    import zipfile

    source = write_ml10m(tmp_path / "source" / "ml-10M100K")
    served = tmp_path / "served" / "ml-10m.zip"
    served.parent.mkdir()
    with zipfile.ZipFile(served, "w") as archive:
        for name in ("ratings.dat", "movies.dat"):
            archive.write(source / name, f"ml-10M100K/{name}")
    digest = hashlib.md5(served.read_bytes()).hexdigest()
    (tmp_path / "served" / "ml-10m.zip.md5").write_text(f"MD5 (ml-10m.zip) = {digest}\n")
    monkeypatch.setitem(data_processor.DATASETS, "ml-10m", dataclasses.replace(data_processor.DATASETS["ml-10m"],
                        url=served.as_uri()))
    target = tmp_path / "data" / "ml-10M100K"
    data = data_processor.load_data("ml-10m", str(target))
    assert len(data.ratings) == len((source / "ratings.dat").read_text().splitlines())
    (tmp_path / "served" / "ml-10m.zip.md5").write_text("0" * 32 + "  ml-10m.zip\n")
    for leftover in (target.parent / "ml-10m.zip", target.parent / "ml-10m.zip.md5", target / "ratings.dat"):
        leftover.unlink()
    with pytest.raises(DataError, match="hash does not match"):
        data_processor.load_data("ml-10m", str(target))
