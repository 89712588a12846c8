"""Bad inputs and failures, through main() as a user calls it: each ends in a correct run or in exit status 2 with
a message that names the problem and the fix, and a results folder never mixes two runs."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import data_processor
import main
import checkpoints
import comet_logger
from conftest import PROJECT_DIR, write_movielens

TINY = ["--layers", "16,8,16", "--dropout", "0.2", "--batch-size", "16", "--learning-rate", "0.01"]


def run_main(capsys, folder, results, *args):
    status = main.main(["--data-dir", str(folder), "--results-dir", str(results), *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_ratings_file_that_is_a_folder(tmp_path, capsys):
    folder = write_movielens(tmp_path / "ml-1m")
    (folder / "ratings.dat").unlink()
    (folder / "ratings.dat").mkdir()
    status, output = run_main(capsys, folder, tmp_path / "r", *TINY)
    assert status == 2 and "ratings.dat is a folder, not a file" in output and "downloading" not in output


def test_unreadable_ratings_file(tmp_path, capsys, monkeypatch):
    folder = write_movielens(tmp_path / "ml-1m")
    real_read_bytes = Path.read_bytes

    def refuse(path):
        if path.name == "ratings.dat":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    status, output = run_main(capsys, folder, tmp_path / "r", *TINY)
    assert status == 2 and "cannot be read (Permission denied)" in output and "chmod" in output


@pytest.mark.parametrize("change, ok, words", [
    (lambda raw: b"\xef\xbb\xbf" + raw, True, []),  # a UTF-8 byte-order mark is dropped
    (lambda raw: raw + b"\n\n\r\n", True, []),  # blank lines at the end are allowed
    (lambda raw: raw.replace(b"\n", b"\n\n", 1), False, ["line 2: a blank line"]),
    (lambda raw: b"\x89PNG\r\n\x1a\n\x00\x00\x00", False, ["not latin-1 text"]),
    (lambda raw: b"1::1193::5::978300760::extra\n" + raw, False, ["line 1: 5 fields where 3 or 4"]),
])
def test_file_shapes(tmp_path, capsys, change, ok, words):
    folder = write_movielens(tmp_path / "ml-1m")
    path = folder / "ratings.dat"
    path.write_bytes(change(path.read_bytes()))
    status, output = run_main(capsys, folder, tmp_path / "r", "--epochs", "1", *TINY)
    assert status == (0 if ok else 2), output
    for word in words:
        assert word in output and "Fix:" in output


def test_too_little_data_is_refused_before_training(tmp_path, capsys):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1::5\n1::2::4\n2::1::3\n2::3::2\n3::2::1\n")
    status, output = run_main(capsys, folder, tmp_path / "r", *TINY)
    assert status == 2 and f"{folder / 'ratings.dat'} holds 5 ratings: at least 100 are needed" in output
    assert "Training" not in output


def test_users_with_one_rating_stay_in_training(tmp_path, capsys):
    folder = write_movielens(tmp_path / "ml-1m")
    with open(folder / "ratings.dat", "a") as handle:
        handle.write("61::1::4::978300000\n")
    with open(folder / "users.dat", "a") as handle:
        handle.write("61::F::25::1::10061\n")
    status, output = run_main(capsys, folder, tmp_path / "r", "--epochs", "1", *TINY)
    assert status == 0 and "1 users have fewer than 3 ratings; their 1 ratings stay in training" in output


def test_resume_with_other_layers_is_refused(tmp_path, capsys):
    folder = write_movielens(tmp_path / "ml-1m")
    results = tmp_path / "r"
    assert main.main(["--data-dir", str(folder), "--results-dir", str(results), "--epochs", "2", *TINY]) == 0
    state = {"epoch": 1, "history": [], "config": {**json.loads((results / "config.json").read_text())}}
    state["config"] = {key: state["config"][key] for key in checkpoints.RESUME_KEYS}
    (results / "checkpoint.json").write_text(json.dumps(state))
    (results / "checkpoint.weights.h5").write_bytes(b"")
    status, output = run_main(capsys, folder, results, "--resume", "--epochs", "3", *TINY[:1], "32,8,32",
                              *TINY[2:])
    assert status == 2 and "--layers was [16, 8, 16], now [32, 8, 32]" in output and "Traceback" not in output


def test_infinite_learning_rate_is_refused(tmp_path, capsys):
    status, output = run_main(capsys, tmp_path / "none", tmp_path / "r", "--learning-rate", "inf")
    assert status == 2 and "--learning-rate" in output and "positive number" in output


def test_divergence_in_the_first_epoch_says_nothing_was_evaluated(tmp_path, capsys):
    folder = write_movielens(tmp_path / "ml-1m")
    results = tmp_path / "r"
    assert main.main(["--data-dir", str(folder), "--results-dir", str(results), "--epochs", "2", *TINY]) == 0
    assert (results / "model.keras").is_file()  # a finished run is in the folder
    status, output = run_main(capsys, folder, results, "--epochs", "5", "--layers", "16,8,16", "--batch-size",
                              "512", "--learning-rate", "1e30", "--activation", "linear", "--last-activation",
                              "linear")
    assert status == 1 and "no checkpoint exists and nothing was evaluated" in output
    assert sorted(path.name for path in results.iterdir()) == ["metrics.json"]  # nothing of the old run is left
    assert json.loads((results / "metrics.json").read_text())["diverged"] is True


def test_comet_calls_have_a_deadline():
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="no answer from CometML"):
        comet_logger.with_deadline(lambda: time.sleep(30), seconds=0.2)
    assert time.perf_counter() - started < 20  # it returned long before the call would have
    assert comet_logger.with_deadline(lambda: 7) == 7
    with pytest.raises(ValueError):
        comet_logger.with_deadline(lambda: int("x"))


def test_config_records_provenance(tmp_path, monkeypatch):
    folder = write_movielens(tmp_path / "ml-1m")
    monkeypatch.setenv("MOVIELENS_DIR", str(folder))
    assert main.main(["--results-dir", str(tmp_path / "r"), "--epochs", "1", *TINY]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["data_dir"] == str(folder.resolve())
    assert config["data_files"] == {"ratings.dat": data_processor.download.hash_of(folder / "ratings.dat")}
    assert config["date"].startswith("20") and "program_version" in config


def test_default_results_folder_is_ignored_by_git():
    if not (PROJECT_DIR / ".git").exists():
        pytest.skip("not a git checkout")
    for name in ("model.keras", "metrics.json", "history.csv", "predictions.tsv"):
        path = main.RESULTS_DIR / name
        assert subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=PROJECT_DIR).returncode == 0, name
    assert subprocess.run(["git", "check-ignore", "-q", "results/reference/metrics.json"],
                          cwd=PROJECT_DIR).returncode == 1


def test_help_and_config_errors_do_not_load_tensorflow():
    code = ("import sys, main, baselines; main.parse_config([]); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR).returncode == 0
