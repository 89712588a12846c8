"""--refit: after selection on the validation ratings, the same model trained again on train + validation for exactly
what validation chose, scored beside the train-only run; in --compare and blend.py the blend's weights come from the
train-only members' validation predictions. No test rating is read before scoring."""

import csv
import json

import numpy as np
import pytest

import baseline_models
import blend
import blending
import checkpoints
import data_processor
import evaluate
import lbfgs
import main
import reporting
import utils
from conftest import write_ml100k, write_movielens

TINY = ["--layers", "16,8,16", "--dropout", "0.2", "--batch-size", "16", "--learning-rate", "0.01"]
KERNEL = ["--epochs", "3", "--lbfgs-iterations", "3", "--finetune-epochs", "2", "--finetune-iterations", "2",
          "--layers", "24,24"]


def read_json(path):
    return json.loads(path.read_text())


def read_history(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_the_refit_split_moves_validation_into_training_and_keeps_test_apart(tmp_path):
    write_movielens(tmp_path / "ml-1m")
    prepared = data_processor.prepare_data("ml-1m", tmp_path / "ml-1m", "random", 7, "user")
    refit = data_processor.with_validation_in_training(prepared)
    split = prepared.split
    assert np.array_equal(refit.split.train, np.sort(np.concatenate([split.train, split.val])))
    assert np.array_equal(refit.split.test, split.test) and not np.intersect1d(refit.split.train, split.test).size
    assert refit.train.nnz == prepared.train.nnz + prepared.val.nnz
    assert (refit.train - prepared.train - prepared.val).nnz == 0  # exactly the two parts' ratings


def test_a_deep_refit_replays_the_epochs_and_learning_rates_on_train_and_validation(tmp_path, capsys):
    write_movielens(tmp_path / "ml-1m")
    results = tmp_path / "run"
    assert main.main(["--data-dir", str(tmp_path / "ml-1m"), "--split", "random", "--results-dir", str(results),
                      "--epochs", "4", "--early-stopping-patience", "10", "--lr-schedule", "step",
                      "--lr-step-epochs", "2,3", "--refit", *TINY]) == 0
    trained, refit = read_json(results / "metrics.json"), read_json(results / "refit" / "metrics.json")
    rates = [float(row["learning_rate"]) for row in read_history(results / "history.csv")]
    assert rates == pytest.approx([0.01, 0.01, 0.005, 0.0025], rel=1e-6)
    assert trained["refit_schedule"]["learning_rates"] == pytest.approx(rates, rel=1e-6)
    refit_rates = [float(row["learning_rate"]) for row in read_history(results / "refit" / "history.csv")]
    assert refit_rates == pytest.approx(rates, rel=1e-6) and refit["epochs"] == trained["epochs"] == 4
    assert refit["n_train"] == trained["n_train"] + trained["n_val"] and refit["n_test"] == trained["n_test"]
    assert refit["val_rmse"] is None and refit["val_masked_rmse"] is None  # trained on: not a validation figure
    assert refit["test_rmse"] != trained["test_rmse"]
    assert read_json(results / "refit" / "config.json")["refit_schedule"] == trained["refit_schedule"]
    assert evaluate.main(["--results-dir", str(results / "refit")]) == 0  # the refit reloads: the same figures
    printed = capsys.readouterr().out.split("Wrote")[0].splitlines()
    assert f"Test RMSE (global, the literature's metric):    {refit['test_rmse']:.4f}" in printed
    assert "Validation RMSE (global):                       none: a refit trains on the validation ratings" in printed


def test_a_kernel_refit_runs_each_stage_for_its_kept_epochs_and_resumes(tmp_path, monkeypatch):
    folder = write_ml100k(tmp_path / "ml-100k")
    common = ["--preset", "glocalk", "--dataset", "ml-100k", "--data-dir", str(folder), "--split", "u1", *KERNEL,
              "--refit"]
    assert main.main([*common, "--results-dir", str(tmp_path / "whole")]) == 0
    trained = read_json(tmp_path / "whole" / "metrics.json")
    history = read_history(tmp_path / "whole" / "history.csv")
    kept = []
    for stage in ("pre-training", "fine-tuning"):
        rows = [{**row, "val_rmse_clip": float(row["val_rmse_clip"]), "epoch": int(row["epoch"])}
                for row in history if row["stage"] == stage]
        kept.append(lbfgs.stage_kept_epoch(rows, 1e-4) - rows[0]["epoch"] + 1)
    assert trained["refit_schedule"] == {"stage_epochs": kept}
    refit_history = read_history(tmp_path / "whole" / "refit" / "history.csv")
    assert [sum(row["stage"] == stage for row in refit_history) for stage in ("pre-training", "fine-tuning")] == kept
    refit = read_json(tmp_path / "whole" / "refit" / "metrics.json")
    assert refit["kept_epoch"] == sum(kept) and refit["pre_training"]["val_rmse"] is None
    assert not any(key.startswith("val_") for key in refit_history[0])  # no validation: it trains on those ratings

    save = checkpoints.LbfgsCheckpoint.save
    saves = []

    def save_then_interrupt(self, *arguments):
        save(self, *arguments)
        saves.append(self.results_dir.name)
        if saves.count("refit") == 1:  # the refit's first epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.LbfgsCheckpoint, "save", save_then_interrupt)
    cut = tmp_path / "cut"
    assert main.main([*common, "--results-dir", str(cut)]) == 130
    assert (cut / "metrics.json").is_file() and (cut / "refit" / "checkpoint.json").is_file()
    strict = json.loads((cut / "refit" / "checkpoint.json").read_text(), parse_constant=pytest.fail)  # no Infinity
    assert strict["best_val"] is None and strict["best_epoch"] == 1
    train_only = (cut / "metrics.json").read_text()
    monkeypatch.setattr(checkpoints.LbfgsCheckpoint, "save", save)
    assert main.main([*common, "--results-dir", str(cut), "--resume"]) == 0
    assert (cut / "metrics.json").read_text() == train_only  # the train-only run is not trained again
    assert read_json(cut / "refit" / "metrics.json")["test_rmse"] == pytest.approx(refit["test_rmse"], abs=1e-6)


def test_refit_baselines_fit_train_and_validation_with_the_validation_chosen_settings(tmp_path):
    write_movielens(tmp_path / "ml-1m")
    data = data_processor.load_data("ml-1m", tmp_path / "ml-1m")
    split = data_processor.split_ratings(data, "random", 3)
    names = ("global mean", "user+item bias", "item-knn")
    trained = baseline_models.evaluate_baselines(data, split, names=names)
    chosen = {row["name"]: {**row, "reg": 40.0, "neighbours": 1} for row in trained}  # not what validation chose
    refit = baseline_models.evaluate_baselines(data, split, names=names, refit_of=chosen)
    mean = data.ratings[np.concatenate([split.train, split.val])].mean()
    expected = np.sqrt(np.mean((np.clip(mean, 1, 5) - data.ratings[split.test]) ** 2))
    assert refit[0]["test_rmse"] == pytest.approx(expected) and refit[0]["refit"]
    assert refit[1]["reg"] == 40.0 != trained[1]["reg"] and refit[1]["val_rmse"] is None
    assert (refit[2]["reg"], refit[2]["neighbours"]) == (40.0, 1) and refit[2]["val_rmse"] is None


def test_compare_with_refit_blends_with_train_only_weights_and_resumes_to_the_same_table(tmp_path, monkeypatch,
                                                                                         capsys):
    folder = write_ml100k(tmp_path / "ml-100k")
    command = ["--compare", "sparsefc,glocalk,global-mean,user-item-bias", "--dataset", "ml-100k", "--data-dir",
               str(folder), "--split", "u1", "--repeats", "2", *KERNEL, "--refit"]
    assert main.main([*command, "--results-dir", str(tmp_path / "whole")]) == 0
    with open(tmp_path / "whole" / "comparison.csv") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    train_only = ["global mean", "user+item bias", "sparsefc preset", "glocalk preset",
                  "blend of the above (fitted on validation)"]
    assert list(rows) == train_only + [f"{name} (refit)" for name in train_only]
    assert all(rows[f"{name} (refit)"]["test_rmse_u1"] for name in train_only)
    for index in (1, 2):
        first_stage = read_json(tmp_path / "whole" / "sparsefc" / f"run-{index}" / "refit" / "metrics.json")
        glocalk = read_json(tmp_path / "whole" / "glocalk" / f"run-{index}" / "refit" / "metrics.json")
        assert first_stage["test_rmse"] == pytest.approx(glocalk["pre_training"]["test_rmse"], abs=1e-6)
    blends = read_json(tmp_path / "whole" / "blend.json")
    for trained, refitted in zip(blends["splits"], blends["refit_splits"]):
        assert [row["weight"] for row in refitted["members"]] == [row["weight"] for row in trained["members"]]
        assert refitted["intercept"] == trained["intercept"]
        assert refitted["blend"]["val_rmse"] == trained["blend"]["val_rmse"]  # the same fit on validation
        assert refitted["blend"]["test_rmse"] != trained["blend"]["test_rmse"]
    table = (tmp_path / "whole" / "comparison.md").read_text()
    assert "(refit): the row's model trained again on train + validation" in table
    assert "--refit" in table.splitlines()[0] and "--resume" not in table.splitlines()[0]

    save = checkpoints.LbfgsCheckpoint.save
    saves = []

    def save_then_interrupt(self, *arguments):
        save(self, *arguments)
        saves.append(str(self.results_dir))
        if sum(path.endswith("run-2/refit") for path in saves) == 2:  # the second split's glocalk refit
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.LbfgsCheckpoint, "save", save_then_interrupt)
    cut = tmp_path / "cut"
    assert main.main([*command, "--results-dir", str(cut)]) == 130
    assert f"with: python3 main.py {' '.join(command)} --results-dir {cut} --resume" in capsys.readouterr().err
    monkeypatch.setattr(checkpoints.LbfgsCheckpoint, "save", save)
    monkeypatch.setattr(utils, "machine_description", lambda: "machine B")  # the command continued elsewhere
    assert main.main([*command, "--results-dir", str(cut), "--resume"]) == 0
    heading = (cut / "comparison.md").read_text().splitlines()[0]
    assert heading.endswith(f"; trained on {utils.cpu_description()} (u1, u2); machine B (u2).")  # glocalk's refit

    def without_times(path):
        with open(path) as handle:
            return [{key: value for key, value in row.items() if "seconds" not in key}
                    for row in csv.DictReader(handle)]

    assert without_times(cut / "comparison.csv") == without_times(tmp_path / "whole" / "comparison.csv")


def test_a_table_names_each_machine_with_its_splits_and_runs_recorded_before_machines_were():
    runs = {"bfm": [{"split": "random", "split_seed": 1994, "train_seconds": 9.0, "machines": None},
                    {"split": "random", "split_seed": 1995, "train_seconds": 9.0, "machines": ["X"]}],
            "glocalk preset": [{"split": "random", "split_seed": 1994, "train_seconds": 9.0, "machines": ["Y"]},
                               {"split": "random", "split_seed": 1995, "train_seconds": 9.0, "machines": ["X", "Y"]}],
            "autorec preset": [{"split": "random", "split_seed": 1995, "train_seconds": 9.0, "machines": ["Z"]},
                               {"split": "random", "split_seed": 1994, "train_seconds": 9.0, "machines": ["Z"]}],
            "blend": [{"split": "random", "split_seed": 1996}]}  # nothing trained, nothing timed
    assert reporting.machines_text(runs) == f"trained on {reporting.UNRECORDED_MACHINE} (seed 1994); X (seed 1995); " \
                                            f"Y (seed 1994, seed 1995); Z (seed 1994, seed 1995)"  # the table's order
    assert reporting.machines_text({"bfm": runs["bfm"][1:]}) == "trained on X"


def test_blend_refit_uses_validation_of_the_members_and_test_of_their_refits(tmp_path, capsys):
    write_movielens(tmp_path / "ml-1m")
    data = data_processor.load_data("ml-1m", tmp_path / "ml-1m")
    split = data_processor.split_ratings(data, "random", 5)
    names = ("global mean", "user+item bias")
    trained = baseline_models.evaluate_baselines(data, split, tmp_path / "runs", "", names)
    members = [str(tmp_path / "runs" / baseline_models.baseline_folder(name)) for name in names]
    assert blend.main([*members, "--refit", "--output", str(tmp_path / "b")]) == 2
    assert "holds no refit (missing refit/predictions.npz)" in capsys.readouterr().err
    baseline_models.evaluate_baselines(data, split, tmp_path / "runs", "refit", names,
                                       refit_of={row["name"]: row for row in trained})
    assert blend.main([*members, "--output", str(tmp_path / "b")]) == 0
    assert blend.main([*members, "--refit", "--output", str(tmp_path / "r")]) == 0
    plain, refit = (read_json(tmp_path / name / "blend.json")["splits"][0] for name in ("b", "r"))
    assert [row["weight"] for row in refit["members"]] == [row["weight"] for row in plain["members"]]
    loaded = blending.load_member(members[1], refit=True)
    refitted = blending.load_member(tmp_path / "runs" / "user-item-bias" / "refit")
    assert np.array_equal(loaded.predictions["test"], refitted.predictions["test"])
    assert np.array_equal(loaded.predictions["val"], blending.load_member(members[1]).predictions["val"])


def test_repeats_with_refit_summarise_the_refits_beside_the_runs(tmp_path):
    write_movielens(tmp_path / "ml-1m")
    assert main.main(["--data-dir", str(tmp_path / "ml-1m"), "--split", "random", "--repeats", "2", "--epochs", "2",
                      "--refit", "--results-dir", str(tmp_path / "runs"), *TINY]) == 0
    summary = read_json(tmp_path / "runs" / "summary.json")
    refits = [read_json(tmp_path / "runs" / f"run-{index}" / "refit" / "metrics.json") for index in (1, 2)]
    assert summary["n_runs"] == summary["refit"]["n_runs"] == 2
    assert summary["refit"]["test_rmse_mean"] == pytest.approx(np.mean([run["test_rmse"] for run in refits]))
    assert summary["refit"]["val_rmse_mean"] is None
