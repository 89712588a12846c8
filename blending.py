"""Linear blends of finished runs: an intercept plus one weight per member, fitted by ridge least squares on the
members' predictions at the validation ratings, the ridge strength chosen by cross-validation on those same
ratings. The test ratings are only scored, never fitted; for the blend to be honest every member must have
trained without the validation ratings (every run of main.py and every baseline here does).

A member is a results folder with predictions.npz and config.json: a run of main.py, or a baseline's folder
(baselines.py --results-dir, or main.py --compare). Members must share the data (files and checksums) and the
split (the same validation and test ratings).
"""

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np

import data_processor
import metrics
import reporting
import utils
from utils import ConfigError

RIDGE_ALPHAS = np.logspace(-3, 4, 15)  # candidate strengths of the ridge penalty on the weights
CV_FOLDS = 5  # folds of the validation ratings that choose the strength


@dataclasses.dataclass
class Member:
    folder: Path
    config: dict
    split: data_processor.Split  # its validation and test indices (train unused)
    predictions: dict  # {'val': ..., 'test': ...}, aligned with the split


def load_member(folder, refit=False):
    """A member's predictions; with `refit`, its validation predictions with its refit's test predictions (the
    refit, trained on the validation ratings, has none that are honest there)."""
    folder = Path(folder)
    if refit:
        if not (folder / "refit" / "predictions.npz").is_file():
            raise ConfigError(f"{folder} holds no refit (missing refit/predictions.npz). Fix: train it with python3 "
                              f"main.py --refit (or baselines.py --refit), or blend without --refit.")
        member, refitted = load_member(folder), load_member(folder / "refit")
        if not np.array_equal(member.split.test, refitted.split.test):
            raise ConfigError(f"{folder / 'refit'} was scored on other test ratings than {folder}. Fix: train both "
                              f"again with python3 main.py --refit and the same flags.")
        return dataclasses.replace(member, predictions={**member.predictions, "test": refitted.predictions["test"]})
    missing = [name for name in ("config.json", "predictions.npz") if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"{folder} holds no predictions to blend (missing {', '.join(missing)}). Fix: point at "
                          f"the folder of a finished run (python3 main.py writes predictions.npz) or of a baseline "
                          f"(python3 baselines.py --results-dir DIR).")
    fix = "Fix: train that run again (its command is in config.json's argv, if that file is intact)."
    try:
        config = json.loads((folder / "config.json").read_text())
    except (ValueError, OSError) as error:
        raise ConfigError(f"{folder / 'config.json'} is damaged ({error}). {fix}") from None
    try:
        with np.load(folder / "predictions.npz") as saved:
            split = data_processor.Split(np.empty(0, np.int64), saved["val_index"], saved["test_index"])
            predictions = {"val": saved["val"], "test": saved["test"]}
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ConfigError(f"{folder / 'predictions.npz'} is damaged ({type(error).__name__}: {error}). {fix}") \
            from None
    return Member(folder, config, split, predictions)


def check_members(members):
    """Refuse members of other data or another split, naming the first that differs."""
    first = members[0]
    for member in members[1:]:
        if data_identity(member.config) != data_identity(first.config):
            raise ConfigError(f"{member.folder} was trained on other data than {first.folder} (data set or the "
                              f"ratings' fingerprint differ). Fix: blend runs of the same data.")
        if not all(np.array_equal(getattr(member.split, part), getattr(first.split, part)) for part in ("val", "test")):
            raise ConfigError(f"{member.folder} was evaluated on another split than {first.folder} (its validation "
                              f"or test ratings differ). Fix: blend runs of the same --split and --split-seed.")


def data_identity(config):
    """The data set and its ratings' fingerprint (file checksums for runs recorded before it)."""
    fingerprint = config.get("ratings_fingerprint")
    return config.get("dataset"), fingerprint["sha256"] if fingerprint else config.get("data_files")


def load_data(member, moved_data=None):
    """The members' data set, checked against the ratings they recorded; `moved_data` as in
    reporting.with_moved_data, when the data is no longer where the member recorded it."""
    config = reporting.with_moved_data(member.config, moved_data or {})
    data = data_processor.load_run_data(config)
    data_processor.check_recorded(data, config, str(member.folder))
    return data


def fit_blend(val_predictions, val_ratings, scale):
    """Ridge regression of the validation ratings on the members' (clipped) predictions, the strength chosen by
    CV_FOLDS-fold cross-validation. Returns the fitted model."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold

    features = np.clip(np.column_stack(val_predictions), *scale)
    folds = KFold(CV_FOLDS, shuffle=True, random_state=0)
    return RidgeCV(alphas=RIDGE_ALPHAS, cv=folds, scoring="neg_mean_squared_error").fit(features, val_ratings)


def blend(members, data):
    """Fit the blend on the validation ratings; each member's metrics and the blend's. Returns (the report, the
    blend's validation and test predictions)."""
    check_members(members)
    split, scale = members[0].split, data.scale[:2]
    model = fit_blend([member.predictions["val"] for member in members], data.ratings[split.val], scale)
    blended = {part: model.predict(np.clip(np.column_stack([member.predictions[part] for member in members]),
                                           *scale)) for part in ("val", "test")}
    rows = [{"member": reporting.display_path(member.folder), "weight": float(weight),
             **metrics.evaluate_predictions(data, split, member.predictions, None)}
            for member, weight in zip(members, model.coef_)]
    return {"blend": metrics.evaluate_predictions(data, split, blended, None), "intercept": float(model.intercept_),
            "ridge_alpha": float(model.alpha_), "members": rows, "n_val": len(split.val),
            "n_test": len(split.test)}, blended


def blend_folders(folders, data, save_to, refit=False):
    """The blend of the finished runs and baselines among `folders` (those with predictions.npz; a run that
    diverged or was interrupted has none) on `data`, saved in `save_to` as a member of its own (predictions.npz,
    metrics.json: the report): --compare's blend row. With `refit`, the blend of the members' refits: fitted on
    the members' validation predictions, applied to their refits' test predictions. Returns the report."""
    members = [load_member(folder, refit) for folder in folders if (Path(folder) / "predictions.npz").is_file()
               and (not refit or (Path(folder) / "refit" / "predictions.npz").is_file())]
    report, predictions = blend(members, data)
    save_to = reporting.prepare_results_dir(save_to)
    reporting.save_predictions(save_to / "predictions.npz", members[0].split, predictions)
    first = members[0].config
    utils.save_json(save_to / "config.json", {"model": "blend", **{key: first.get(key) for key in (
        "dataset", "data_dir", "data_files", "ratings_fingerprint")}, "members": [row["member"] for row in
                                                                                  report["members"]]})
    utils.save_json(save_to / "metrics.json", report)
    return report


BAYESIAN_ROWS = ("bmf", "bfm", "bfm-probit")


def paired_tests(data, row_folders, rows, bayesian=BAYESIAN_ROWS):
    """Each row's paired tests (metrics.paired_tests) against the strongest Bayesian row (the lowest mean test
    RMSE among the rows named in `bayesian`), from the predictions in their folders: {row name: tests}, and the
    reference's name. `row_folders`: {row name: its folder of each split}; `rows`: {row name: its summary}."""
    bayesian = [name for name in rows if name in bayesian and rows[name]["test_rmse_mean"]]
    if not bayesian:
        return {}, None
    reference = min(bayesian, key=lambda name: rows[name]["test_rmse_mean"])
    members = {name: [load_member(folder) for folder in folders] for name, folders in row_folders.items()
               if all((Path(folder) / "predictions.npz").is_file() for folder in folders)}
    truth = [data.ratings[member.split.test] for member in members[reference]]
    reference_predictions = [member.predictions["test"] for member in members[reference]]
    tests = {name: metrics.paired_tests(truth, [member.predictions["test"] for member in row_members],
                                        reference_predictions, data.scale[:2])
             for name, row_members in members.items() if len(row_members) == len(truth)}
    return tests, reference
