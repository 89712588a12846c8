"""Loading, validation, splitting and matrices of data_processor.py, on synthetic data."""

import dataclasses
import re
import zipfile

import numpy as np
import pytest

import data_processor
from datasets import lines, movielens
from conftest import write_movielens
from data_processor import DataError


def load(folder, dataset="ml-1m"):
    return data_processor.load_dataset(dataset, folder)


def test_loads_official_layout_with_dense_ids(movielens_dir):
    data = load(movielens_dir)
    first = (movielens_dir / "ratings.dat").read_text().splitlines()[0].split("::")
    assert data.user_ids[data.users[0]] == int(first[0]) and data.item_ids[data.items[0]] == int(first[1])
    assert data.ratings[0] == float(first[2])
    assert data.ratings.dtype == np.float32 and set(np.unique(data.ratings)) <= {1, 2, 3, 4, 5}
    assert (data.n_users, data.n_items) == (60, 40)
    assert data.titles[0] == "Movie 1: Caf\u00e9 (1951)"  # latin-1 and a single ':' inside a title
    assert data.timestamps is not None and data.files["ratings.dat"] == data_processor.download.hash_of(
        movielens_dir / "ratings.dat")


def test_huge_ids_are_indexed_densely(tmp_path):
    folder = write_movielens(tmp_path / "ml-1m", n_users=10, n_movies=30)
    ratings = folder / "ratings.dat"
    text = re.sub(r"^(\d+)::5::", r"\1::900000000::", ratings.read_text(), flags=re.M)
    ratings.write_text(text.replace("\n1::", "\n1000000000::", 1))
    (folder / "users.dat").unlink()
    data = load(folder)
    assert data.n_users == 11 and data.user_ids[-1] == 1000000000
    assert data.n_items == 30 and data.item_ids[-1] == 900000000
    assert data.users.max() == 10 and data.items.max() == 29


def test_lines_without_timestamp_give_the_same_ratings(tmp_path):
    with_time = movielens.read_movielens_ratings(
        write_movielens(tmp_path / "a", timestamps=True) / "ratings.dat", "ml-1m")
    without_time = movielens.read_movielens_ratings(
        write_movielens(tmp_path / "b", timestamps=False) / "ratings.dat", "ml-1m")
    for left, right in zip(with_time[:3], without_time[:3]):
        np.testing.assert_array_equal(left, right)
    assert with_time[3] is not None and without_time[3] is None


@pytest.mark.parametrize("bad_line, words", [
    ("3::7::4::978300000::9", ["line 3", "5 fields where 3 or 4", "3::7::4::978300000::9"]),
    ("3::7", ["line 3", "2 fields where 3 or 4", "3::7"]),
    ("3::x7::4", ["line 3", "MovieID is not an integer", "3::x7::4"]),
    ("3.5::7::4", ["line 3", "UserID is not an integer", "3.5::7::4"]),
    ("3::7::6", ["line 3", "Rating 6 is not 1-5", "3::7::6"]),
    ("3::7::0", ["line 3", "Rating 0 is not 1-5"]),
    ("0::7::4", ["line 3", "UserID 0 is not 1 or more"]),
    ("1::5::4::978300009", ["line 3", "already rated on line 1", "1::5::4"]),
    ("3::7::4::NA", ["line 3", "Timestamp is missing or not a number"]),
    ("3::7::NA::978300009", ["line 3", "Rating is missing or not a number"]),
    ("3::7::::978300009", ["line 3", "Rating is missing or not a number"]),
    ("3::99999999999999999999::4", ["line 3", "MovieID is too large"]),
    ("", ["line 3", "a blank line"]),
    ("3::7::4.5", ["line 3", "Rating 4.5 is not 1-5"]),
])
def test_each_malformed_ratings_line_is_named(tmp_path, bad_line, words):
    path = tmp_path / "ratings.dat"
    path.write_text(f"1::5::3::978300000\n2::5::4::978300001\n{bad_line}\n4::1::2::978300002\n")
    with pytest.raises(DataError) as error:
        movielens.read_movielens_ratings(path, "ml-1m")
        data_processor.load_dataset("ml-1m", tmp_path)  # the duplicate is found once the ids are indexed
    message = str(error.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_empty_and_utf16_files_are_refused(tmp_path):
    empty = tmp_path / "ratings.dat"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        movielens.read_movielens_ratings(empty, "ml-1m")
    utf16 = tmp_path / "movies.dat"
    utf16.write_text("1::Toy Story (1995)::Animation\n", encoding="utf-16")
    with pytest.raises(DataError, match="not latin-1"):
        lines.read_titles(utf16, movielens.hint("ml-1m"), "::", fields=3)


def test_users_and_movies_files_are_validated(movielens_dir):
    (movielens_dir / "users.dat").write_text("1::F::1::10::48067\n2::M::56::x::70072\n")
    with pytest.raises(DataError, match=r"users.dat, line 2: Occupation is not an integer"):
        load(movielens_dir)
    (movielens_dir / "users.dat").write_text("1::F::1::10::48067\n")
    with pytest.raises(DataError, match="UserID 2, which is not in"):
        load(movielens_dir)


def test_missing_movies_file_only_disables_titles(movielens_dir, capsys):
    (movielens_dir / "movies.dat").unlink()
    data = load(movielens_dir)
    assert data.titles == {} and len(data.ratings) > 0
    assert "movies.dat not found" in capsys.readouterr().out


def test_split_is_81_9_10_disjoint_complete_and_stratified(movielens_dir):
    data = load(movielens_dir)
    split = data_processor.split_ratings(data, "stratified", 1994)
    n = len(data.ratings)
    parts = [split.train, split.val, split.test]
    assert sum(map(len, parts)) == n
    assert len(np.unique(np.concatenate(parts))) == n  # disjoint and complete
    assert abs(len(split.test) / n - 0.10) < 0.01
    assert abs(len(split.val) / n - 0.09) < 0.01
    # Stratified: every user keeps about 81% of their ratings in train, and has test ratings.
    per_user_total = np.bincount(data.users)
    per_user_train = np.bincount(data.users[split.train], minlength=len(per_user_total))
    share = per_user_train[per_user_total > 0] / per_user_total[per_user_total > 0]
    assert share.min() > 0.7 and share.max() < 0.9
    assert set(data.users[split.test]) == set(data.users)


def test_split_is_reproducible_and_depends_on_seed(movielens_dir):
    data = load(movielens_dir)
    first, again = data_processor.split_ratings(data, "stratified", 7), data_processor.split_ratings(data, "seed", 7)
    other = data_processor.split_ratings(data, "stratified", 8)
    np.testing.assert_array_equal(first.test, again.test)
    assert not np.array_equal(first.test, other.test)


def test_matrices_hold_ratings_at_their_positions(movielens_dir):
    data = load(movielens_dir)
    split = data_processor.split_ratings(data)
    rows, cols, ratings = data_processor.triples(data, split.train)
    shape = data_processor.matrix_shape(data)
    dense = np.zeros(shape, np.float32)
    dense[rows, cols] = ratings
    sparse = data_processor.sparse_rating_matrix(rows, cols, ratings, shape)
    assert dense.shape == (60, 40) and dense.dtype == np.float32
    np.testing.assert_array_equal(dense, sparse.toarray())
    np.testing.assert_array_equal(dense[rows, cols], ratings)
    assert np.count_nonzero(dense) == len(ratings)
    item_rows, item_cols, _ = data_processor.triples(data, split.train, orientation="item")
    np.testing.assert_array_equal(item_rows, cols)
    assert data_processor.matrix_shape(data, "item") == (40, 60)


def test_fill_unknown_changes_only_unknown_inputs():
    matrix = np.array([[5, 0, 3], [0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(data_processor.fill_unknown(matrix, "zero"), matrix)
    np.testing.assert_array_equal(data_processor.fill_unknown(matrix, 3.0), [[5, 3, 3], [3, 3, 3]])
    np.testing.assert_array_equal(data_processor.fill_unknown(matrix, "mean"), [[5, 4, 3], [0, 0, 0]])


def test_data_dir_flag_beats_environment_beats_constant(monkeypatch, tmp_path):
    monkeypatch.delenv("MOVIELENS_DIR", raising=False)
    assert data_processor.resolve_data_dir("ml-1m") == data_processor.DATA_DIR / "ml-1m"
    monkeypatch.setenv("MOVIELENS_DIR", str(tmp_path / "env"))
    assert data_processor.resolve_data_dir("ml-1m") == tmp_path / "env"
    assert data_processor.resolve_data_dir("ml-100k") == data_processor.DATA_DIR / "ml-100k"  # ml-1m's variable
    assert data_processor.resolve_data_dir("ml-1m", str(tmp_path / "flag")) == tmp_path / "flag"


def make_zip(tmp_path):
    source = write_movielens(tmp_path / "source" / "ml-1m")
    zip_path = tmp_path / "served.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name in ("ratings.dat", "users.dat", "movies.dat"):
            archive.write(source / name, f"ml-1m/{name}")
    return zip_path


def test_download_verifies_checksum_and_unpacks(tmp_path, monkeypatch):
    zip_path = make_zip(tmp_path)
    monkeypatch.setitem(data_processor.DATASETS, "ml-1m", dataclasses.replace(data_processor.DATASETS["ml-1m"],
                        url=zip_path.as_uri(), checksum=data_processor.download.hash_of(zip_path)))
    target = tmp_path / "data" / "ml-1m"
    assert data_processor.ensure_dataset("ml-1m", target) == target
    assert len(load(target).ratings) > 0


def test_download_with_wrong_checksum_is_refused_and_removed(tmp_path, monkeypatch):
    monkeypatch.setitem(data_processor.DATASETS, "ml-1m", dataclasses.replace(data_processor.DATASETS["ml-1m"],
                        url=make_zip(tmp_path).as_uri()))
    target = tmp_path / "data" / "ml-1m"
    with pytest.raises(DataError) as error:
        data_processor.ensure_dataset("ml-1m", target)
    assert "hash does not match" in str(error.value)
    assert not (tmp_path / "data" / "ml-1m.zip").exists() and not (target / "ratings.dat").exists()


def test_offline_download_names_folder_url_and_fixes(tmp_path, monkeypatch):
    monkeypatch.setitem(data_processor.DATASETS, "ml-1m", dataclasses.replace(data_processor.DATASETS["ml-1m"],
                        url=(tmp_path / "nowhere.zip").as_uri()))
    target = tmp_path / "data" / "ml-1m"
    with pytest.raises(DataError) as error:
        data_processor.ensure_dataset("ml-1m", target)
    for word in [str(target), "nowhere.zip", "--data-dir", "MOVIELENS_DIR"]:
        assert word in str(error.value)
    assert not (tmp_path / "data" / "ml-1m.zip").exists()
