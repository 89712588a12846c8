"""The program as users run it: flags, errors, a short training run and its files, CometML offline, divergence,
interrupt and resume. Runs on small synthetic data."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import checkpoints
import data_processor
import main
import utils
from conftest import PROJECT_DIR

TINY = ["--layers", "16,8,16", "--dropout", "0.2", "--batch-size", "16", "--learning-rate", "0.01"]


def run_program(*args, env=None, timeout=300):
    """python3 main.py ARGS in a subprocess; returns (exit status, stdout + stderr)."""
    result = subprocess.run([sys.executable, str(PROJECT_DIR / "main.py"), *map(str, args)], capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, "COMET_API_KEY": "", **(env or {})})
    return result.returncode, result.stdout + result.stderr


def test_defaults_are_the_seed_reference_run():
    config = main.parse_config([])
    assert config["layers"] == [512, 512, 1024, 512, 512] and config["dropout"] == 0.8
    assert config["activation"] == config["last_activation"] == "selu"
    assert (config["learning_rate"], config["momentum"], config["batch_size"]) == (0.001, 0.9, 512)
    assert (config["l2_encode"], config["l2_decode"], config["epochs"]) == (0.001, 0.001, 500)
    assert (config["early_stopping_patience"], config["early_stopping_min_delta"], config["split_seed"]) == (
        3, 1e-4, 1994)


def test_flags_override_constants():
    config = main.parse_config(["--epochs", "3", "--layers", "512,256,512", "--learning-rate", "0.01",
                                "--dropout", "0.5", "--batch-size", "64", "--optimizer", "adam",
                                "--split-seed", "7", "--input-fill", "mean"])
    assert config["epochs"] == 3 and config["layers"] == [512, 256, 512] and config["learning_rate"] == 0.01
    assert config["dropout"] == 0.5 and config["batch_size"] == 64 and config["optimizer"] == "adam"
    assert config["split_seed"] == 7 and config["input_fill"] == "mean"
    assert config["training_path"] == "dense"  # a filled input is dense


def test_help_lists_every_flag():
    status, output = run_program("--help")
    assert status == 0
    for flag in ["--layers", "--dropout", "--learning-rate", "--batch-size", "--epochs", "--data-dir",
                 "--results-dir", "--resume", "--split-seed", "--precision", "--training-path",
                 "--validation-batch-size"]:
        assert flag in output


@pytest.mark.parametrize("args, words", [
    (["--dropout", "1.5"], ["--dropout", "[0, 1)"]),
    (["--layers", "512,abc"], ["--layers", "comma-separated list of integers"]),
    (["--layers", "512,0"], ["--layers", "positive integers"]),
    (["--batch-size", "0"], ["--batch-size", "positive integer"]),
    (["--validation-batch-size", "-4"], ["--validation-batch-size", "positive integer"]),
    (["--epochs", "-1"], ["--epochs", "positive integer"]),
    (["--learning-rate", "0"], ["--learning-rate", "positive number"]),
    (["--activation", "sigmoidal"], ["--activation", "invalid choice", "selu"]),
    (["--optimizer", "rmsprop"], ["--optimizer", "invalid choice", "adam"]),
    (["--input-fill", "average"], ["--input-fill", "'mean'"]),
    (["--learning-rte", "0.1"], ["unrecognized arguments", "--learning-rte"]),
])
def test_bad_hyperparameters_are_named_before_any_work(args, words, tmp_path):
    status, output = run_program(*args, "--data-dir", tmp_path / "no-data", "--results-dir", tmp_path / "r")
    assert status == 2 and "Traceback" not in output
    for word in words:
        assert word in output
    assert "Data:" not in output and not (tmp_path / "no-data").exists()


def test_unusable_results_dir_is_refused_before_training(movielens_dir, tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    status, output = run_program("--data-dir", movielens_dir, "--results-dir", blocker, *TINY)
    assert status == 2 and "Traceback" not in output
    assert "is a file, not a folder" in output and "--results-dir" in output and "Training" not in output
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    if os.access(read_only, os.W_OK):
        pytest.skip("running as a user who can write anywhere (root): cannot test a read-only folder")
    status, output = run_program("--data-dir", movielens_dir, "--results-dir", read_only, *TINY)
    assert status == 2 and "not writable" in output


def test_missing_data_and_no_download_gives_clear_error(tmp_path, monkeypatch, capsys):
    # A file:// URL that does not exist stands for an offline machine.
    monkeypatch.setitem(data_processor.DATASETS, "ml-1m", dataclasses.replace(data_processor.DATASETS["ml-1m"],
                        url=(tmp_path / "offline" / "ml-1m.zip").as_uri()))
    status = main.main(["--data-dir", str(tmp_path / "ml-1m"), "--results-dir", str(tmp_path / "r"), *TINY])
    output = capsys.readouterr().err
    assert status == 2 and output.startswith("error: ")
    for word in [str(tmp_path / "ml-1m"), "offline/ml-1m.zip", "--data-dir", "MOVIELENS_DIR"]:
        assert word in output


@pytest.mark.parametrize("make_bad, words", [
    (lambda text: text.replace("\n", "\n7::x::3::0\n", 1), ["line 2: MovieID is not an integer: '7::x::3::0'"]),
    (lambda text: text.replace("\n", "\n7::3::9::0\n", 1), ["line 2: Rating 9 is not 1-5: '7::3::9::0'"]),
    (lambda text: text.replace("\n", "\n7::3::4::0::1\n", 1), ["line 2: 5 fields where 3 or 4", "'7::3::4::0::1'"]),
    (lambda text: "1::2::3::4::5\n" + text, ["line 1: 5 fields where 3 or 4", "'1::2::3::4::5'"]),
    (lambda text: text + text.splitlines()[0] + "\n", ["already rated on line 1"]),
    (lambda text: "", ["is empty"]),
    (lambda text: text.encode("utf-16"), ["not latin-1 text"]),
])
def test_malformed_ratings_file_gives_clear_error(movielens_dir, tmp_path, capsys, make_bad, words):
    ratings = movielens_dir / "ratings.dat"
    bad = make_bad(ratings.read_text())
    ratings.write_bytes(bad if isinstance(bad, bytes) else bad.encode("latin-1"))
    status = main.main(["--data-dir", str(movielens_dir), "--results-dir", str(tmp_path / "r"), *TINY])
    message = capsys.readouterr().err
    assert status == 2 and message.startswith(f"error: {ratings}")
    for word in words:
        assert word in message


def test_short_training_run_writes_every_result(movielens_dir, tmp_path, capsys):
    results = tmp_path / "results"
    status = main.main(["--data-dir", str(movielens_dir), "--results-dir", str(results), "--epochs", "25",
                      "--patience", "100", *TINY])
    assert status == 0
    for name in ["metrics.json", "history.csv", "loss.png", "rmse.png", "model.keras", "config.json"]:
        assert (results / name).stat().st_size > 0, name
    assert not (results / "checkpoint.json").exists()  # removed once the run has finished
    metrics = json.loads((results / "metrics.json").read_text())
    for key in ["test_masked_rmse", "test_rmse", "val_masked_rmse", "val_rmse", "epochs", "train_seconds",
                "seconds_per_epoch", "n_train", "n_val", "n_test", "config"]:
        assert key in metrics
    assert metrics["diverged"] is False and metrics["epochs"] == 25
    assert 0.3 < metrics["test_rmse"] < 2.0 and 0.3 < metrics["test_masked_rmse"] < 2.0
    history = (results / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,masked_rmse_clip,rmse_clip,val_loss,val_masked_rmse_clip,val_rmse_clip")
    losses = [float(line.split(",")[1]) for line in history[1:]]
    assert losses[-1] < losses[0]  # training lowers the loss
    output = capsys.readouterr().out
    assert "Test masked RMSE (per-user, the seed's metric)" in output and "Top 10 recommendations" in output
    assert "Movie " in output  # titles from movies.dat


def test_same_seed_gives_same_metrics(movielens_dir, tmp_path):
    results = []
    for name in ("a", "b"):
        assert main.main(["--data-dir", str(movielens_dir), "--results-dir", str(tmp_path / name),
                          "--epochs", "3", *TINY]) == 0
        results.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert results[0]["test_rmse"] == results[1]["test_rmse"]
    assert results[0]["test_masked_rmse"] == results[1]["test_masked_rmse"]


def test_dense_sparse_and_bfloat16_paths_agree(movielens_dir, tmp_path):
    metrics = {}
    for name, flags in [("dense", ["--training-path", "dense", "--precision", "float32"]),
                        ("sparse", ["--training-path", "sparse", "--precision", "float32"]),
                        ("bfloat16", ["--training-path", "sparse", "--precision", "bfloat16"])]:
        assert main.main(["--data-dir", str(movielens_dir), "--results-dir", str(tmp_path / name), "--epochs", "3",
                          *flags, *TINY]) == 0
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert metrics["dense"]["test_rmse"] == pytest.approx(metrics["sparse"]["test_rmse"], abs=1e-4)
    assert metrics["dense"]["test_rmse"] == pytest.approx(metrics["bfloat16"]["test_rmse"], abs=0.02)


def test_validation_batch_size_changes_no_result(movielens_dir, tmp_path):
    # Every user has validation ratings, so the epoch's validation loss is the same mean over users in any batching.
    histories = []
    for size in (7, 4096):
        results_dir = tmp_path / str(size)
        assert main.main(["--data-dir", str(movielens_dir), "--results-dir", str(results_dir), "--epochs", "2",
                          "--validation-batch-size", str(size), *TINY]) == 0
        lines = (results_dir / "history.csv").read_text().splitlines()
        header = lines[0].split(",")
        histories.append([[float(value) for key, value in zip(header, line.split(",")) if key.startswith("val_")]
                          for line in lines[1:]])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)


def test_comet_offline_writes_an_archive(movielens_dir, tmp_path):
    """--repeats 2: one experiment per run, each with its test metrics, per-epoch RMSEs, figures and tags, the two
    sharing one group tag."""
    status, output = run_program("--data-dir", movielens_dir, "--results-dir", tmp_path / "r", "--epochs", "2",
                                 "--repeats", "2", *TINY, env={"COMET_MODE": "offline"})
    assert status == 0, output
    assert "CometML logging is on (offline" in output
    archives = sorted((tmp_path / "r").rglob("*.zip"))
    assert len(archives) == 2, "one offline CometML archive per run"
    groups = []
    for archive_path in archives:
        with zipfile.ZipFile(archive_path) as archive:
            messages = [json.loads(line) for line in archive.read("messages.json").decode().splitlines()]
            experiment = json.loads(archive.read("experiment.json"))
        metrics = {message["payload"]["metric"]["metricName"]: message["payload"]["metric"]["metricValue"]
                   for message in messages if message["type"] == "metric_msg"}
        saved = json.loads((archive_path.parent / "metrics.json").read_text())
        for key in ("test_rmse", "test_masked_rmse", "val_rmse", "test_ndcg_at_10", "test_recall_at_10"):
            assert metrics[key] == pytest.approx(saved[key])
        assert {"rmse_clip", "val_rmse_clip", "masked_rmse_clip", "val_masked_rmse_clip"} <= set(metrics)
        figures = {message["payload"]["additional_params"].get("figName") for message in messages
                   if "additional_params" in message["payload"]}
        assert {"loss", "rmse"} <= figures
        assert {"ml-1m", "split-stratified", "preset-reference"} <= set(experiment["tags"])
        groups.append({tag for tag in experiment["tags"] if tag.startswith("group-")})
    assert len(groups[0]) == 1 and groups[0] == groups[1]


def test_comet_failure_warns_and_run_goes_on(movielens_dir, tmp_path):
    # An unreachable server stands for a bad key or no network.
    status, output = run_program("--data-dir", movielens_dir, "--results-dir", tmp_path / "r", "--epochs", "2",
                                 *TINY, env={"COMET_API_KEY": "not-a-real-key",
                                             "COMET_URL_OVERRIDE": "http://127.0.0.1:9/clientlib/",
                                             "COMET_OPTIMIZER_URL": "http://127.0.0.1:9/optimizer/"})
    assert status == 0, output
    assert "Traceback" not in output
    assert (tmp_path / "r" / "metrics.json").is_file()


def test_divergence_stops_with_a_message_and_is_recorded(movielens_dir, tmp_path):
    status, output = run_program("--data-dir", movielens_dir, "--results-dir", tmp_path / "r", "--epochs", "20",
                                 "--layers", "16,8,16", "--batch-size", "16", "--learning-rate", "1e6",
                                 "--last-activation", "linear", "--activation", "linear")
    assert status == 1 and "Traceback" not in output
    assert "diverged" in output and "--learning-rate" in output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["diverged"] is True
    if metrics["epochs"] > 0:  # a good epoch came first: its checkpoint is kept and was evaluated
        assert (tmp_path / "r" / "checkpoint.weights.h5").is_file() and "test_rmse" in metrics
        assert f"The last good checkpoint (epoch {metrics['epochs']}) is kept" in output


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume_continues_the_history(movielens_dir, tmp_path, signal_number):
    results = tmp_path / "r"
    args = [sys.executable, str(PROJECT_DIR / "main.py"), "--data-dir", str(movielens_dir),
            "--results-dir", str(results), "--epochs", "400", "--patience", "400", "--checkpoint-seconds", "0",
            *TINY]  # no early end, a checkpoint every epoch
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COMET_API_KEY": ""})
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until a few epochs are checkpointed
        state = results / "checkpoint.json"
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 3:
            break
        time.sleep(0.2)
    process.send_signal(signal_number)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "--resume" in output
    interrupted_at = json.loads((results / "checkpoint.json").read_text())["epoch"]
    assert 3 <= interrupted_at < 400 and (results / "checkpoint.weights.h5").is_file()

    assert main.main(["--data-dir", str(movielens_dir), "--results-dir", str(results), "--epochs",
                      str(interrupted_at + 3), "--resume", *TINY]) == 0
    history = (results / "history.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in history] == list(range(1, interrupted_at + 4))
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["epochs"] == interrupted_at + 3


def run_interrupted_after_epoch(epoch, args, monkeypatch):
    """main.main(args) with a Ctrl-C just after the given epoch's end (and its checkpoint, if one is due): the
    status."""
    on_epoch_end = checkpoints.KerasCheckpoint.on_epoch_end

    def interrupt(self, index, logs=None):
        on_epoch_end(self, index, logs)
        if index + 1 == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.KerasCheckpoint, "on_epoch_end", interrupt)
    try:
        return main.main(args)
    finally:
        monkeypatch.setattr(checkpoints.KerasCheckpoint, "on_epoch_end", on_epoch_end)


@pytest.mark.parametrize("seconds, checkpointed", [("0", 4), ("3600", 1)])
def test_the_checkpoint_is_written_after_the_first_epoch_then_at_most_every_checkpoint_seconds(
        movielens_dir, tmp_path, monkeypatch, capsys, seconds, checkpointed):
    args = ["--data-dir", str(movielens_dir), "--results-dir", str(tmp_path / "r"), "--epochs", "6", "--patience", "6",
            "--checkpoint-seconds", seconds, *TINY]
    monkeypatch.setattr(utils, "machine_description", lambda: "machine A")
    assert run_interrupted_after_epoch(4, args, monkeypatch) == 130
    assert f"The last checkpoint, of epoch {checkpointed}, is in" in capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "checkpoint.json").read_text())["epoch"] == checkpointed
    monkeypatch.setattr(utils, "machine_description", lambda: "machine B")  # resumed on another machine
    assert main.main([*args, "--resume"]) == 0  # the epochs after the checkpoint are trained again
    history = (tmp_path / "r" / "history.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in history] == list(range(1, 7))
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())  # the time of every epoch, resumed ones too
    assert metrics["train_seconds"] >= sum(float(line.split(",")[-1]) for line in history) - 0.01
    assert metrics["machines"] == ["machine A", "machine B"] and metrics["config"]["machine"] == "machine B"


def test_resume_without_checkpoint_is_explained(movielens_dir, tmp_path):
    status, output = run_program("--data-dir", movielens_dir, "--results-dir", tmp_path / "r", "--resume", *TINY)
    assert status == 2 and "no checkpoint" in output and "Traceback" not in output


def test_integration_on_real_movielens(real_data_dir, tmp_path):
    """One epoch of the seed's network on the real data, end to end."""
    results = tmp_path / "results"
    assert main.main(["--data-dir", str(real_data_dir), "--results-dir", str(results), "--epochs", "1"]) == 0
    metrics = json.loads((results / "metrics.json").read_text())
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (810169, 90019, 100021)
    assert metrics["epochs"] == 1 and 0.5 < metrics["test_rmse"] < 4.5


def test_item_orientation_scores_the_same_test_triples(movielens_dir, tmp_path):
    metrics = {}
    for orientation in ("user", "item"):
        results = tmp_path / orientation
        assert main.main(["--data-dir", str(movielens_dir), "--results-dir", str(results), "--epochs", "2",
                          "--orientation", orientation, *TINY]) == 0
        metrics[orientation] = json.loads((results / "metrics.json").read_text())
    assert metrics["user"]["n_test"] == metrics["item"]["n_test"]
    assert metrics["item"]["config"]["orientation"] == "item"


def test_presets_and_flags_after_them():
    autorec = main.parse_config(["--preset", "autorec"])
    assert autorec["orientation"] == "item" and autorec["layers"] == [500]
    assert autorec["activation"] == "sigmoid" and autorec["last_activation"] == "linear"
    assert main.parse_config(["--preset", "autorec", "--layers", "300"])["layers"] == [300]
    assert main.parse_config([]) == {**main.parse_config(["--preset", "seed"]), "argv": []}


def test_compare_writes_table_and_chart(movielens_dir, tmp_path):
    results = tmp_path / "compare"
    assert main.main(["--compare", "--data-dir", str(movielens_dir), "--results-dir", str(results),
                      "--epochs", "2", "--batch-size", "16", "--lbfgs-iterations", "3", "--finetune-epochs", "1"]) == 0
    table = (results / "comparison.md").read_text()
    for name in ["global mean", "user+item bias", "item-knn", "reference preset", "autorec preset", "deeprec preset",
                 "deeprec-user preset", "sparsefc preset", "glocalk preset",
                 "blend of the above (fitted on validation)"]:
        assert name in table
    assert (results / "comparison.png").stat().st_size > 0 and (results / "comparison.csv").is_file()
    blend = json.loads((results / "blend.json").read_text())["splits"][0]
    members = {row["member"].split("/")[-2] for row in blend["members"]}
    assert {"bfm", "user-item-bias", "item-knn", "reference", "deeprec-user", "glocalk", "sparsefc"} <= members
    assert blend["n_test"] > 0
    assert "Made by `python3 main.py --compare" in table and "strongest Bayesian row" in table
    assert f"; trained on {utils.cpu_description()}.\n" in table  # every row, baselines and networks: this CPU
    with open(results / "comparison.csv") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    reference = min(("bmf", "bfm"), key=lambda name: float(rows[name]["test_rmse_mean"]))
    assert float(rows[reference]["test_rmse_difference"]) == 0.0  # the reference against itself
    for name in ("global mean", "glocalk preset", "blend of the above (fitted on validation)"):
        assert rows[name]["p_per_split"] and float(rows[name]["test_rmse_difference"]) == pytest.approx(
            float(rows[name]["test_rmse_mean"]) - float(rows[reference]["test_rmse_mean"]), abs=1e-9)


def test_missing_movies_file_only_loses_titles(movielens_dir, tmp_path, capsys):
    (movielens_dir / "movies.dat").unlink()
    assert main.main(["--data-dir", str(movielens_dir), "--results-dir", str(tmp_path / "r"), "--epochs", "2",
                      *TINY]) == 0
    output = capsys.readouterr().out
    assert "movies.dat not found" in output and "item 1" in output and (tmp_path / "r" / "metrics.json").is_file()


def test_bad_users_file_gives_clear_error(movielens_dir, tmp_path, capsys):
    (movielens_dir / "users.dat").write_text("1::F::1::10::48067\n2::M::fifty::16::70072\n")
    assert main.main(["--data-dir", str(movielens_dir), "--results-dir", str(tmp_path / "r"), *TINY]) == 2
    assert "users.dat, line 2: Age is not an integer: '2::M::fifty::16::70072'" in capsys.readouterr().err


def test_download_with_wrong_checksum_is_refused(tmp_path, monkeypatch, capsys):
    served = tmp_path / "served" / "ml-1m.zip"
    served.parent.mkdir()
    served.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: not MovieLens-1M
    monkeypatch.setitem(data_processor.DATASETS, "ml-1m", dataclasses.replace(data_processor.DATASETS["ml-1m"],
                                                                             url=served.as_uri()))
    target = tmp_path / "data" / "ml-1m"
    assert main.main(["--data-dir", str(target), "--results-dir", str(tmp_path / "r"), *TINY]) == 2
    assert "hash does not match" in capsys.readouterr().err
    assert not (tmp_path / "data" / "ml-1m.zip").exists()


def test_a_damaged_checkpoint_is_named_on_resume(movielens_dir, tmp_path, monkeypatch, capsys):
    results = tmp_path / "r"
    args = ["--data-dir", str(movielens_dir), "--results-dir", str(results), "--epochs", "400", "--patience", "400",
            *TINY]
    assert run_interrupted_after_epoch(2, args, monkeypatch) == 130
    capsys.readouterr()
    for damaged in ("checkpoint.json", "checkpoint.weights.h5"):
        for damage in (lambda raw: raw[:len(raw) // 2], lambda raw: b"", lambda raw: bytes(range(256))):
            path = results / damaged
            original = path.read_bytes()
            path.write_bytes(damage(original))
            assert main.main([*args, "--resume"]) == 2
            output = capsys.readouterr().err
            assert f"{damaged} is damaged" in output and "Fix:" in output and "Traceback" not in output, output
            path.write_bytes(original)
    assert main.main([*args, "--epochs", "3", "--resume"]) == 0  # the undamaged checkpoint resumes


def test_compare_gives_the_same_table_with_its_baselines_beside_the_networks_or_in_turn(movielens_dir, tmp_path):
    command = ["--compare", "global-mean,user-item-bias,autorec", "--data-dir", str(movielens_dir), "--split",
               "random", "--repeats", "2", "--epochs", "2", "--batch-size", "16"]
    tables = []
    for way in ("--baselines-beside", "--no-baselines-beside"):
        assert main.main([*command, way, "--results-dir", str(tmp_path / way)]) == 0
        with open(tmp_path / way / "comparison.csv") as handle:
            tables.append([{key: value for key, value in row.items() if "seconds" not in key}
                           for row in csv.DictReader(handle)])
    assert tables[0] == tables[1]
    assert [row["name"] for row in tables[0]] == ["global mean", "user+item bias", "autorec preset",
                                                  "blend of the above (fitted on validation)"]


def test_compare_resumed_with_another_row_trains_only_that_row(movielens_dir, tmp_path):
    """A finished table continued with --resume and one more row: the new row is trained for every split, every
    finished member is kept as it is, and the table and blend have the new row."""
    command = ["--data-dir", str(movielens_dir), "--split", "random", "--repeats", "2", "--epochs", "2",
               "--batch-size", "16", "--results-dir", str(tmp_path / "table")]
    assert main.main(["--compare", "user-item-bias,autorec", *command]) == 0
    kept = {path: path.read_bytes() for row in ("user-item-bias", "autorec")
            for path in (tmp_path / "table" / row).glob("run-*/predictions.npz")}
    assert len(kept) == 4  # the blend's own folders are made again: it has a new member
    assert main.main(["--compare", "user-item-bias,autorec,deeprec-user", *command, "--resume"]) == 0
    assert all(path.read_bytes() == content for path, content in kept.items())
    assert all((tmp_path / "table" / "deeprec-user" / f"run-{index}" / "predictions.npz").is_file() for index in (1, 2))
    with open(tmp_path / "table" / "comparison.csv") as handle:
        assert "deeprec-user preset" in {row["name"] for row in csv.DictReader(handle)}
    blend = json.loads((tmp_path / "table" / "blend.json").read_text())["splits"][1]
    assert "deeprec-user" in {row["member"].split("/")[-2] for row in blend["members"]}
