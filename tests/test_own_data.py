"""--dataset csv (a ratings file of one's own) and recommend.py's answers: every user's top N, a list of users,
similar items, a new user's ratings."""

import csv

import numpy as np
import pytest

from datasets import own_csv
from datasets.lines import DataError
import inference
import main
import metrics
import recommend
import recommendations
from conftest import synthetic_ratings

TINY = ["--layers", "16,8,16", "--dropout", "0.2", "--batch-size", "16", "--learning-rate", "0.01"]


def write_own_ratings(folder, n_users=50, n_items=40):
    """A shop's export: a header, text ids, ISO dates, a titles file with quoted commas. Returns (ratings file,
    titles file, {(user id, item id)})."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = synthetic_ratings(n_users, n_items)
    lines = ["customer,product,stars,when"] + [
        f"c-{user:03d},SKU-{item * 7}X,{rating},{np.datetime64(stamp, 's').astype('datetime64[D]')}"
        for user, item, rating, stamp in rows]
    ratings_file, titles_file = folder / "ratings.csv", folder / "titles.csv"
    ratings_file.write_text("\n".join(lines) + "\n")
    titles_file.write_text("product,name\n" + "".join(f'SKU-{item * 7}X,"Lamp {item}, brass"\n'
                                                      for item in range(1, n_items + 1)))
    return ratings_file, titles_file, {(f"c-{user:03d}", f"SKU-{item * 7}X") for user, item, _, _ in rows}


def csv_flags(ratings_file, *more):
    return ["--dataset", "csv", "--ratings-file", str(ratings_file), *more]


@pytest.fixture(scope="module")
def own_runs(tmp_path_factory):
    """Two 2-epoch runs on an own ratings file with a time split: user-based and item-based."""
    folder = tmp_path_factory.mktemp("own")
    ratings_file, titles_file, pairs = write_own_ratings(folder / "data")
    runs = {}
    for orientation in ("user", "item"):
        runs[orientation] = folder / orientation
        assert main.main([*csv_flags(ratings_file, "--titles-file", str(titles_file)), "--split", "time",
                          "--epochs", "2", "--orientation", orientation, "--results-dir", str(runs[orientation]),
                          *TINY]) == 0
    return runs, pairs


@pytest.mark.parametrize("orientation", ["user", "item"])
def test_every_users_top_n_has_no_rated_item(own_runs, orientation, tmp_path):
    runs, pairs = own_runs
    output = tmp_path / "recommendations.csv"
    assert recommend.main(["--all-users", "--top", "4", "--output", str(output),
                           "--results-dir", str(runs[orientation])]) == 0
    with open(output, newline="") as handle:
        rows = list(csv.DictReader(handle))
    users = {row["user_id"] for row in rows}
    assert len(users) == 50 and all(user.startswith("c-") for user in users)
    for user in users:
        block = [row for row in rows if row["user_id"] == user]
        assert [int(row["rank"]) for row in block] == [1, 2, 3, 4]
        predicted = [float(row["predicted_rating"]) for row in block]
        assert predicted == sorted(predicted, reverse=True) and all(1 <= value <= 5 for value in predicted)
    assert not {(row["user_id"], row["item_id"]) for row in rows} & pairs
    assert rows[0]["title"].startswith("Lamp ") and ", brass" in rows[0]["title"]


@pytest.mark.parametrize("orientation", ["user", "item"])
def test_streamed_top_n_equals_the_full_prediction_matrix(own_runs, orientation, monkeypatch):
    """Batches of a few users or items (a running top N for item-based networks) give the exact top N."""
    monkeypatch.setattr(recommendations, "USER_BATCH", 7)
    monkeypatch.setattr(recommendations, "ITEM_BATCH", 5)
    network, _, prepared = inference.load_run(own_runs[0][orientation])
    data = prepared.data
    full = metrics.predict_rows(network, prepared.train, np.arange(prepared.shape[0]))
    full = full if orientation == "user" else full.T
    full[data.users, data.items] = -np.inf
    users = np.arange(data.n_users)
    streamed = np.concatenate([items for _, items, _ in recommendations.top_n_batches(network, prepared, users, 3)])
    expected = np.argsort(-full, axis=1, kind="stable")[:, :3]
    assert np.allclose(np.take_along_axis(full, streamed, axis=1), np.take_along_axis(full, expected, axis=1))


@pytest.mark.parametrize("orientation", ["user", "item"])
def test_similar_items_start_with_the_item_itself(own_runs, orientation):
    network, _, prepared = inference.load_run(own_runs[0][orientation])
    for item in (0, 5, 17):
        similar = recommendations.similar_items(network, prepared, item, count=5)
        assert similar[0][0] == prepared.data.item_ids[item] and similar[0][2] == pytest.approx(1.0, abs=1e-5)
        assert len(similar) == 6 and all(-1 <= cosine <= 1 for _, _, cosine in similar)


def test_a_new_users_ratings(own_runs, capsys):
    runs, _ = own_runs
    assert recommend.main(["--ratings", "SKU-7X:5,SKU-14X:1", "--top", "5", "--results-dir", str(runs["user"])]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.strip()[:2].rstrip(".").isdigit()]
    assert len(listed) == 5 and not any("SKU-7X," in line or "SKU-14X," in line for line in listed)
    assert recommend.main(["--ratings", "SKU-7X:5", "--results-dir", str(runs["item"])]) == 2
    assert "cannot read a new user" in capsys.readouterr().err
    assert recommend.main(["--ratings", "SKU-7X:9", "--results-dir", str(runs["user"])]) == 2
    assert "rating in 1-5" in capsys.readouterr().err


def test_a_user_list_names_an_unknown_user(own_runs, tmp_path, capsys):
    runs, _ = own_runs
    (tmp_path / "users.txt").write_text("c-001\n\nc-002\nnobody\n")
    assert recommend.main(["--users", str(tmp_path / "users.txt"), "--results-dir", str(runs["user"])]) == 2
    assert "users.txt, line 4: user 'nobody' is not in the data" in capsys.readouterr().err
    (tmp_path / "users.txt").write_text("c-001\nc-002\n")
    output = tmp_path / "two.csv"
    assert recommend.main(["--users", str(tmp_path / "users.txt"), "--top", "2", "--output", str(output),
                           "--results-dir", str(runs["user"])]) == 0
    assert len(output.read_text().splitlines()) == 1 + 2 * 2


def test_recommend_refuses_a_folder_without_a_model(tmp_path, capsys):
    assert recommend.main(["--all-users", "--results-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "holds no finished run" in error and "python3 main.py --results-dir" in error


@pytest.mark.parametrize("text, options, expected", [
    # the layouts a practitioner brings: separators, no header, columns by name or position, half stars, seconds
    ("u1;i1;4.5\nu2;i1;3\n", {}, ([4.5, 3.0], (3.0, 4.5, 0.5), None)),
    ("u1;i1;4,5\nu2;i1;3\n", {}, ([4.5, 3.0], (3.0, 4.5, 0.5), None)),  # a spreadsheet's decimal comma
    ("u1\ti1\t-9.5\nu2\ti1\t10\n", dict(rating_scale=[-10, 10, 0]), ([-9.5, 10.0], (-10.0, 10.0, 0.0), None)),
    ("item\tx\tuser\trating\ni1\t0\tu1\t4\ni1\t0\tu2\t2\n", dict(columns="user,item,rating"),
     ([4.0, 2.0], (2.0, 4.0, 1.0), None)),
    ("u1::i1::4::978300000\nu2::i1::2::978300001\n", {}, ([4.0, 2.0], (2.0, 4.0, 1.0), [978300000, 978300001])),
    ('"u 1","i,1",4,2024-01-02T10:00:00\n"u2","i,1",2,2024-01-03\n', dict(rating_scale=[1, 5, 0]),
     ([4.0, 2.0], (1.0, 5.0, 0.0), [1704189600, 1704240000])),
    ("9,3.7,a\n8,2.25,b\n", dict(columns="1,3,2"), ([3.7, 2.25], (2.25, 3.7, 0.0), None)),
])
def test_own_layouts_are_read(tmp_path, text, options, expected):
    path = tmp_path / "r.txt"
    path.write_text(text)
    users, items, ratings, timestamps, titles, scale, _ = own_csv.read_csv_ratings(
        own_csv.CsvFormat(str(path), **options))
    assert ratings.tolist() == pytest.approx(expected[0]) and scale == expected[1]
    assert (timestamps is None and expected[2] is None) or timestamps.tolist() == expected[2]
    assert len(users) == len(items) == 2 and users.dtype.kind == "U"
    assert own_csv.scale_text(scale).startswith("-10 to 10" if scale[0] < 0 else f"{scale[0]:g}-{scale[1]:g}")


@pytest.mark.parametrize("mutate, flags, expected", [
    (lambda lines: lines[:3] + ["c-001,SKU-7X,6,2024-01-01"] + lines[3:], ["--rating-scale", "1,5"],
     ["line 4", "rating 6 is off the scale 1-5", "c-001,SKU-7X,6"]),
    (lambda lines: lines[:5] + ["c-001,SKU-7X,4"] + lines[5:], [], ["line 6", "3 fields where 4"]),
    (lambda lines: lines[:2] + ["c-001,SKU-7X,NA,2024-01-01"] + lines[2:], [], ["line 3", "rating 'NA' is not"]),
    (lambda lines: lines[:2] + ["c-001,,4,2024-01-01"] + lines[2:], [], ["line 3", "item id is missing"]),
    (lambda lines: lines[:7] + ["c-001,SKU-7X,4,2024-02-30"] + lines[7:], [], ["line 8", "'2024-02-30' is not"]),
    (lambda lines: lines + [lines[1]], [], ["already rated on line 2"]),
    (lambda lines: lines, ["--columns", "customer,sku,stars"], ["no column 'sku'", "'product'"]),
    (lambda lines: lines[:1] + [",".join([*line.split(",")[:2], "1", line.split(",")[3]]) for line in lines[1:]], [],
     ["every rating is 1", "clicks or purchases", "at least two levels"]),
])
def test_a_bad_line_of_an_own_file_is_named(tmp_path, capsys, mutate, flags, expected):
    ratings_file, _, _ = write_own_ratings(tmp_path / "data")
    lines = ratings_file.read_text().splitlines()
    ratings_file.write_text("\n".join(mutate(lines)) + "\n")
    assert main.main([*csv_flags(ratings_file, *flags), "--epochs", "1", "--results-dir", str(tmp_path / "r"),
                      *TINY]) == 2
    error = capsys.readouterr().err
    assert all(text in error for text in expected), error
    assert "Traceback" not in error and not (tmp_path / "r").exists()  # nothing written, not even a folder


def test_a_file_of_pairs_without_ratings_is_refused(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("u1,i1\nu2,i1\n")
    with pytest.raises(DataError, match="line 1: 2 field.*a user, an item and a rating"):
        own_csv.read_csv_ratings(own_csv.CsvFormat(str(path)))


@pytest.mark.parametrize("make, expected", [(lambda path: path.write_text("\n \n"), "is empty"),
                                             (lambda path: path.mkdir(), "is a folder, not a file")])
def test_an_empty_file_or_a_folder_is_refused_with_what_to_give(tmp_path, make, expected):
    path = tmp_path / "ratings.csv"
    make(path)
    with pytest.raises(DataError, match=f"{expected}. Fix: give the text file that holds your ratings"):
        own_csv.read_csv_ratings(own_csv.CsvFormat(str(path)))


def test_items_without_titles_are_named_by_their_ids():
    data = type("Data", (), {"titles": {}, "item_ids": np.array(["Lamp, brass", "12"])})
    assert [recommendations.item_label(data, item) for item in (0, 1)] == ["Lamp, brass", "item 12"]
    assert recommendations.id_after("Lamp, brass", "Lamp, brass") == "" == recommendations.id_after("item 12", "12")
    assert recommendations.id_after("Lamps (1990)", "12") == "item 12, "


@pytest.mark.parametrize("flags, expected", [
    (["--dataset", "csv"], "--ratings-file"),
    (["--ratings-file", "x.csv"], "a setting of --dataset csv"),
    (["--dataset", "csv", "--ratings-file", "x.csv", "--separator", "ab"], "one character"),
])
def test_csv_flags_are_checked(flags, expected, capsys):
    assert main.main([*flags, "--show-config"]) == 2
    assert expected in capsys.readouterr().err


def test_kernel_models_recommend_and_find_similar_items(tmp_path, capsys):
    """GLocal-K (kernelised layers, global kernel, L-BFGS) answers --all-users and --similar-to as the deep network
    does."""
    ratings_file, _, pairs = write_own_ratings(tmp_path / "data")
    results = tmp_path / "glocalk"
    assert main.main([*csv_flags(ratings_file), "--preset", "glocalk", "--layers", "8,8", "--epochs", "2",
                      "--lbfgs-iterations", "3", "--finetune-epochs", "1", "--finetune-iterations", "2",
                      "--results-dir", str(results)]) == 0
    output = tmp_path / "recommendations.csv"
    assert recommend.main(["--all-users", "--top", "2", "--output", str(output), "--results-dir", str(results)]) == 0
    with open(output, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 50 and not {(row["user_id"], row["item_id"]) for row in rows} & pairs
    network, _, prepared = inference.load_run(results)
    similar = recommendations.similar_items(network, prepared, 3, count=4)
    assert similar[0][0] == prepared.data.item_ids[3] and all(-1 <= cosine <= 1 for _, _, cosine in similar)
