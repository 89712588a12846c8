"""Tricky inputs and written files, by class: each is read as a user would expect, or refused naming the file,
the line, the problem and the fix (exit 2, no traceback, nothing half-written)."""

import csv
import gzip
import json
import os

import numpy as np
import pytest

import baselines
import blend
import data_processor
import main
import recommend
from conftest import synthetic_ratings
from datasets import own_csv

TINY = ["--layers", "16,8,16", "--dropout", "0.2", "--batch-size", "16", "--learning-rate", "0.01", "--epochs", "2"]


def read_own(path, **options):
    return data_processor.load_data("csv", None, own_csv.CsvFormat(str(path), **options))


def own_lines(n_users=30, n_items=40, quoted=False):
    rows = synthetic_ratings(n_users, n_items)
    user = (lambda u: f'"Smith, {u}"') if quoted else (lambda u: f"u{u}")
    return [f"{user(u)},i{i},{r},{np.datetime64(t, 's').astype('datetime64[D]')}" for u, i, r, t in rows]


# ---- reading your own file --------------------------------------------------------------------------------------

def test_a_quoted_first_line_without_header_keeps_its_separator_inside_quotes(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(own_lines(quoted=True)) + "\n")
    data = read_own(path, header="no")
    assert data.user_ids[0] == "Smith, 1" and len(data.ratings) == len(own_lines(quoted=True))


@pytest.mark.parametrize("content, columns, words", [
    ("user,item,rating\n", "", "holds a header line and no ratings"),
    ("user,item,rating\nu1,i1,4\n", "user,user,rating", "names the column 'user' twice"),
])
def test_a_header_without_ratings_and_a_column_named_twice_are_named(tmp_path, content, columns, words):
    path = tmp_path / "ratings.csv"
    path.write_text(content)
    with pytest.raises(data_processor.DataError, match=words):
        read_own(path, columns=columns)


def test_rating_steps_count_from_the_lowest_rating(tmp_path):
    path = tmp_path / "ratings.csv"
    values = [1, 2.5, 4, 5.5, 7, 8.5, 10]
    path.write_text("".join(f"u{k % 9},i{k},{values[k % len(values)]:g}\n" for k in range(150)))
    assert read_own(path, rating_scale=[1, 10, 1.5]).scale == (1.0, 10.0, 1.5)
    path.write_text(path.read_text() + "u1,i999,2\n")
    with pytest.raises(data_processor.DataError, match=r"line 151: rating 2 is off the scale 1-10 in steps of 1.5"):
        read_own(path, rating_scale=[1, 10, 1.5])


def test_a_date_far_from_the_others_is_named_when_it_empties_the_time_split(tmp_path):
    path = tmp_path / "ratings.csv"
    lines = own_lines()
    lines[7] = ",".join(lines[7].split(",")[:3] + ["1901-01-01"])
    path.write_text("\n".join(lines) + "\n")
    data = read_own(path)
    user, item = lines[7].split(",")[:2]
    with pytest.raises(data_processor.DataError, match=rf"1901-01-01 \(user {user}, item {item}\).*correct that"):
        data_processor.split_ratings(data, "time", 1)


def test_a_utf8_file_with_a_stray_byte_is_refused_at_its_line_and_a_latin1_file_reads(tmp_path):
    path = tmp_path / "ratings.csv"
    lines = [line.replace("u1,", "Zoë,") for line in own_lines()]
    good = ("\n".join(lines) + "\n").encode("utf-8")
    broken = good.replace(b"\nu2,", b"\nu\xe92,", 1)
    path.write_bytes(broken)
    line = broken.split(b"\n").index(next(raw for raw in broken.split(b"\n") if b"\xe9" in raw)) + 1
    with pytest.raises(data_processor.DataError, match=rf"line {line}: bytes that are not UTF-8"):
        read_own(path)
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    assert "Zoë" in read_own(path).user_ids


def test_a_compressed_file_is_named_and_a_long_line_is_quoted_short(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_bytes(gzip.compress(("\n".join(own_lines()) + "\n").encode()))
    with pytest.raises(data_processor.DataError, match="compressed file.*unpack it first"):
        read_own(path)
    lines = own_lines()
    lines[3] = lines[3].replace(",i", ",i" + "x" * 200_000, 1) + ",extra"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(data_processor.DataError, match=r"line 4:.*\(200,0\d\d characters\)") as error:
        read_own(path)
    assert len(str(error.value)) < 1000


# ---- files written, runs and blends -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quoted_run(tmp_path_factory):
    """A user-based 2-epoch run on a file whose user ids and titles hold commas and quotes."""
    folder = tmp_path_factory.mktemp("quoted")
    rows = synthetic_ratings(40, 40)
    ratings = folder / "ratings.csv"
    ratings.write_text("user,item,rating\n" + "".join(f'"Smith, J{u}","say ""{i}""",{r}\n' for u, i, r, _ in rows))
    titles = folder / "titles.csv"
    titles.write_text("".join(f'"say ""{i}""","Lamp {i}, ""brass"""\n' for i in range(1, 41)))
    run = folder / "run"
    assert main.main(["--dataset", "csv", "--ratings-file", str(ratings), "--titles-file", str(titles),
                      "--split", "random", "--results-dir", str(run), *TINY]) == 0
    return run


def test_every_users_recommendations_read_back_with_the_csv_module(quoted_run, tmp_path):
    output = tmp_path / "out.csv"
    assert recommend.main(["--all-users", "--top", "3", "--output", str(output), "--results-dir", str(quoted_run)]) == 0
    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40 * 3 and all(len(row) == 5 for row in rows)
    assert rows[0]["user_id"].startswith("Smith, J") and rows[0]["item_id"].startswith('say "')
    item = rows[0]["item_id"][5:-1]
    assert rows[0]["title"] == f'Lamp {item}, "brass"'


@pytest.mark.parametrize("where, words", [("missing/out.csv", "does not exist"), (".", "is a folder")])
def test_an_unwritable_output_is_refused_before_any_work(quoted_run, tmp_path, capsys, where, words):
    assert recommend.main(["--all-users", "--output", str(tmp_path / where), "--results-dir", str(quoted_run)]) == 2
    error = capsys.readouterr().err
    assert words in error and "Traceback" not in error


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_output_without_permission_is_refused(quoted_run, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert recommend.main(["--all-users", "--output", str(locked / "o.csv"), "--results-dir", str(quoted_run)]) == 2
    assert "no permission" in capsys.readouterr().err


def test_output_with_one_user_and_repeats_are_refused(quoted_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        recommend.main(["--user", "Smith, J1", "--output", str(tmp_path / "o.csv"), "--results-dir", str(quoted_run)])
    assert "--output is the CSV file of --all-users or --users" in capsys.readouterr().err
    users = tmp_path / "users.txt"
    users.write_text("Smith, J1\nSmith, J2\nSmith, J1\n")
    assert recommend.main(["--users", str(users), "--output", str(tmp_path / "o.csv"),
                           "--results-dir", str(quoted_run)]) == 2
    assert "line 3: user Smith, J1 again (line 1)" in capsys.readouterr().err


def test_blend_refuses_a_folder_given_twice(quoted_run, capsys):
    with pytest.raises(SystemExit):
        blend.main([str(quoted_run), str(quoted_run)])
    assert "given twice" in capsys.readouterr().err


def test_baselines_read_your_own_file_and_refuse_zero_repeats(tmp_path, capsys):
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(own_lines()) + "\n")
    assert baselines.main(["--dataset", "csv", "--ratings-file", str(path), "--split", "random", "--only",
                           "user-item-bias", "--results-dir", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "user-item-bias" / "metrics.json").read_text())["test_rmse"] > 0
    with pytest.raises(SystemExit):
        baselines.main(["--repeats", "0"])
    assert "--repeats 0 is invalid" in capsys.readouterr().err


def test_evaluate_and_recommend_find_data_that_moved(tmp_path, capsys):
    import shutil

    import evaluate
    from conftest import write_movielens

    folder = write_movielens(tmp_path / "ml-1m")
    run = tmp_path / "run"
    assert main.main(["--data-dir", str(folder), "--results-dir", str(run), *TINY]) == 0
    moved = tmp_path / "elsewhere"
    shutil.move(folder, moved)
    assert evaluate.main(["--results-dir", str(run), "--data-dir", str(moved)]) == 0
    assert recommend.main(["--results-dir", str(run), "--data-dir", str(moved), "--user", "1"]) == 0
    assert evaluate.main(["--results-dir", str(run), "--ratings-file", str(moved / "ratings.dat")]) == 2
    assert "--ratings-file does not apply to this run" in capsys.readouterr().err
    own = tmp_path / "own.csv"
    own.write_text("\n".join(own_lines()) + "\n")
    assert main.main(["--dataset", "csv", "--ratings-file", str(own), "--results-dir", str(tmp_path / "own"),
                      *TINY]) == 0
    own.rename(tmp_path / "renamed.csv")
    capsys.readouterr()
    assert evaluate.main(["--results-dir", str(tmp_path / "own")]) == 2
    assert "not found" in capsys.readouterr().err
    assert evaluate.main(["--results-dir", str(tmp_path / "own"), "--ratings-file", str(tmp_path / "renamed.csv")]) == 0
