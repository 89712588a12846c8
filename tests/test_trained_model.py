"""Using a trained model: evaluate.py re-scores it exactly, recommend.py ranks unseen movies; the ranking metrics
against a hand-computed example."""

import json
import shutil

import numpy as np
import pytest

import blend
import evaluate
import main
import metrics
import recommend
import reporting
from conftest import write_movielens

TINY = ["--layers", "16,8,16", "--dropout", "0.2", "--batch-size", "16", "--learning-rate", "0.01"]


def test_ranking_metrics_by_hand():
    # User 0 rated item 0 in training, so the ranking is items 1, 2, 3, 4; relevant (rating >= 4): items 2 and 4.
    # Top 2 = items 1, 2: one hit at rank 2, so DCG = 1/log2(3), ideal DCG = 1 + 1/log2(3), recall = 1/2.
    # User 1 (no training ratings) ranks items 4, 3; relevant: item 0; no hit. Users without relevant items count
    # in neither mean.
    scores = np.array([[5, 4, 3, 2, 1], [1, 2, 3, 4, 5], [1, 1, 1, 1, 1]], dtype=float)
    result = metrics.ranking_metrics(lambda users: scores[users], np.array([0]), np.array([0]),
                                     np.array([0, 0, 0, 1, 2]), np.array([2, 4, 3, 0, 1]),
                                     np.array([5, 4, 3, 4, 2], dtype=np.float32), 3, 5, k=2)
    ndcg_user_0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert result["ndcg_at_2"] == pytest.approx(ndcg_user_0 / 2)
    assert result["recall_at_2"] == pytest.approx(0.25)


@pytest.mark.parametrize("orientation, precision", [("user", "bfloat16"), ("item", "float32")])
def test_evaluate_and_recommend_use_the_saved_model(tmp_path, capsys, orientation, precision):
    """evaluate.py prints exactly metrics.json's figures, also for a model trained in bfloat16 (on any CPU)."""
    folder = write_movielens(tmp_path / "ml-1m")
    results = tmp_path / "r"
    assert main.main(["--data-dir", str(folder), "--results-dir", str(results), "--epochs", "3",
                      "--orientation", orientation, "--precision", precision, *TINY]) == 0
    saved = json.loads((results / "metrics.json").read_text())
    assert saved["precision"] == precision
    for key in ("test_ndcg_at_10", "test_recall_at_10"):
        assert 0 <= saved[key] <= 1
    capsys.readouterr()
    reporting.print_metrics(saved)
    expected = capsys.readouterr().out

    assert evaluate.main(["--results-dir", str(results)]) == 0
    output = capsys.readouterr().out
    assert expected in output and "Test RMSE (global" in expected
    rows = (results / "predictions.tsv").read_text().splitlines()
    assert rows[0] == "UserID\tMovieID\tactual\tpredicted" and len(rows) - 1 == saved["n_test"]

    assert recommend.main(["--user", "42", "--top", "5", "--results-dir", str(results)]) == 0
    output = capsys.readouterr().out
    listed = [line for line in output.splitlines() if line.strip()[:2].rstrip(".").isdigit()]
    assert "Top 5 recommendations for user 42" in output and len(listed) == 5
    rated = {int(line.split("::")[1]) for line in (folder / "ratings.dat").read_text().splitlines()
             if line.startswith("42::")}
    assert not rated & {int(line.split("(item ")[1].split(",")[0]) for line in listed}


def test_missing_run_and_unknown_user_are_explained(tmp_path, capsys):
    assert evaluate.main(["--results-dir", str(tmp_path / "empty")]) == 2
    assert "holds no finished run" in capsys.readouterr().err
    folder = write_movielens(tmp_path / "ml-1m")
    assert main.main(["--data-dir", str(folder), "--results-dir", str(tmp_path / "r"), "--epochs", "1", *TINY]) == 0
    assert recommend.main(["--user", "999", "--results-dir", str(tmp_path / "r")]) == 2
    assert "user '999' is not in the data" in capsys.readouterr().err
    (folder / "users.dat").unlink()
    with open(folder / "ratings.dat", "a") as handle:  # the data changes after training
        handle.write("61::1::4::978300000\n")
    assert evaluate.main(["--results-dir", str(tmp_path / "r")]) == 2
    assert "are not the ratings the model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    data = write_movielens(folder / "ml-1m")
    assert main.main(["--data-dir", str(data), "--results-dir", str(folder / "r"), "--epochs", "1", *TINY]) == 0
    return folder / "r"


DAMAGE = {
    "truncated": lambda raw: raw[:len(raw) // 2],  # as by a full disk
    "empty": lambda raw: b"",
    "garbage": lambda raw: bytes(range(256)) * 4,
    "deleted": None,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("damaged", ["config.json", "ids.json", "metrics.json", "model.keras", "predictions.npz"])
def test_a_damaged_run_file_is_named_with_its_fix(finished_run, tmp_path, capsys, damaged, damage):
    """Every run file that evaluate.py, recommend.py and blend.py read, damaged every way: exit 2, the file named,
    a fix, no traceback."""
    results, intact = tmp_path / "r", tmp_path / "intact"
    shutil.copytree(finished_run, results)
    shutil.copytree(finished_run, intact)  # blend.py takes each folder once: the damaged one beside an intact one
    path = results / damaged
    if DAMAGE[damage] is None:
        path.unlink()
    else:
        path.write_bytes(DAMAGE[damage](path.read_bytes()))
    capsys.readouterr()
    commands = [(blend.main, [str(results), str(intact), "--output", str(tmp_path / "blend")])]
    if damaged != "predictions.npz":  # evaluate.py and recommend.py do not read it
        commands += [(evaluate.main, ["--results-dir", str(results)]),
                     (recommend.main, ["--user", "42", "--results-dir", str(results)])]
    for command, args in commands:
        if command is blend.main and damaged in ("ids.json", "model.keras", "metrics.json"):
            continue  # blend.py reads config.json and predictions.npz only
        assert command(args) == 2, (command.__module__, damaged, damage)
        error = capsys.readouterr().err
        assert damaged in error and "Fix:" in error and "Traceback" not in error, error
