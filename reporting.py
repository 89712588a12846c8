"""What a run writes and prints: its results folder, the run record, the saved model and files, the figures, and
the summaries of repeated runs and comparisons. NumPy and matplotlib only (no TensorFlow).

A finished run's folder holds model.keras, config.json, ids.json, history.csv, loss.png, rmse.png,
predictions.npz and, written last so that its presence marks a finished run, metrics.json.
"""

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import data_processor
import utils
from datasets import download
from utils import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS_DIR = PROJECT_DIR / "results" / "latest"  # main.py's RESULTS_DIR: where evaluate.py, recommend.py look
# The files of one run in its results folder: a new run clears them first, so a folder never mixes two runs.
RUN_FILES = ["metrics.json", "config.json", "history.csv", "loss.png", "rmse.png", "model.keras", "ids.json",
             "predictions.tsv", "predictions.npz", "summary.json", "checkpoint.json", "checkpoint.weights.h5",
             "checkpoint-best.weights.h5", "checkpoint-first-stage.weights.h5"]
SUMMARY_KEYS = ["test_rmse", "test_masked_rmse", "val_rmse", "test_ndcg_at_10", "test_recall_at_10"]


def prepare_results_dir(results_dir):
    """Fail now, not after hours of training, if results cannot be written."""
    results_dir = Path(results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise ConfigError(f"--results-dir {results_dir} is a file, not a folder. Fix: remove it or choose another "
                          f"folder with --results-dir PATH.")
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        utils.atomic_path(results_dir / "write-test").unlink()
    except OSError as error:
        raise ConfigError(f"--results-dir {results_dir} is not writable ({error.strerror}). Fix: make it writable "
                          f"or choose another folder with --results-dir PATH.") from None
    return results_dir


def clear_previous_run(results_dir):
    """A fresh run removes the files an earlier run left in its folder, so that the folder never mixes two runs
    (a run that fails or diverges leaves only its own files)."""
    old = [name for name in RUN_FILES if (results_dir / name).exists()] + [
        path.name for path in results_dir.glob("run-*") if path.is_dir()]
    if old:
        print(f"Clearing the previous run's files in {results_dir}: {', '.join(old)}")
    for name in old:
        path = results_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def add_moved_data_flags(parser):
    """evaluate.py's, recommend.py's and blend.py's flags for data that moved since the run was trained."""
    for flag, what, default in (
            ("--data-dir", "the data set's folder", "where the run recorded it, else where a new run looks"),
            ("--ratings-file", "your ratings file (--dataset csv)", "where the run recorded it"),
            ("--titles-file", "your titles file (--dataset csv)", "where the run recorded it")):
        parser.add_argument(flag, type=Path, help=f"{what}, if it moved since training (default: {default}; the "
                                                  f"ratings must be the same)")


def moved_data(args):
    return {"data_dir": args.data_dir, "ratings_file": args.ratings_file, "titles_file": args.titles_file}


def with_moved_data(config, moved_data):
    """The recorded configuration with the data's new place: --data-dir for a built-in data set, --ratings-file
    and --titles-file for your own file. A built-in data set that is no longer where the run recorded it, and not
    given, is looked for where a new run would look (its environment variable, such as MOVIELENS_DIR, or
    data/); the ratings are checked against the run's record either way."""
    moved = {key: str(Path(value).expanduser().resolve()) for key, value in moved_data.items() if value}
    own_file = config["dataset"] == "csv"
    wrong = [key for key in moved if (key == "data_dir") == own_file]
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        raise ConfigError(f"{flag} does not apply to this run, trained on {config['dataset']}. Fix: "
                          + ("give its file with --ratings-file (and --titles-file)." if own_file
                             else "give the data set's folder with --data-dir."))
    source = data_processor.DATASETS[config["dataset"]]
    if not own_file and "data_dir" not in moved and not download.holds(source, config["data_dir"]):
        where_new_runs_look = data_processor.resolve_data_dir(config["dataset"])
        if download.holds(source, where_new_runs_look):
            moved["data_dir"] = str(where_new_runs_look.resolve())
    return {**config, **moved}


def finished_result(folder):
    """metrics.json of a finished run or baseline in `folder`, or None."""
    path = Path(folder) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_record(config, data, results_dir):
    """The configuration saved with the results (config.json, metrics.json, the checkpoint): every flag, and
    where the data came from (folder, file checksums, the ratings' fingerprint), the program's version and the
    date and machine."""
    record = {key: value for key, value in config.items() if key not in ("argv", "compare", "resume", "show_config")}
    record.update(results_dir=display_path(results_dir), data_dir=data.data_dir, data_files=data.files,
                  ratings_fingerprint=data_processor.ratings_fingerprint(data),
                  program_version=utils.program_version(),
                  date=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=utils.machine_description())
    return record


def config_json(config):
    """--show-config: the configuration a run would record, as JSON."""
    return json.dumps({key: value for key, value in config.items() if key != "argv"}, indent=2, default=str)


def group_name(config):
    """A name shared by the runs of one --repeats or --compare command (their CometML tag)."""
    return f"{config['dataset']}-{config['split']}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def display_path(path):
    """The path relative to the project folder when it lies inside it, so that saved results name no machine."""
    path = Path(path).resolve()
    return str(path.relative_to(PROJECT_DIR)) if path.is_relative_to(PROJECT_DIR) else str(path)


def run_title(config):
    return f"{config['dataset']}, split {config['split']} (seed {config['split_seed']}), {config['preset']} preset"


def save_results(results_dir, model, result, history, data, config):
    """Model, configuration, ids, history and figures, then metrics.json last: its presence marks a finished run.
    Returns the figures' paths."""
    utils.write_atomic(results_dir / "model.keras", lambda path: model.save(path))
    utils.save_json(results_dir / "config.json", result["config"])
    utils.save_json(results_dir / "ids.json", {"user_ids": data.user_ids.tolist(), "item_ids": data.item_ids.tolist()})
    figures = []
    if history:
        utils.save_history_csv(results_dir / "history.csv", history)
        figures = plot_history(results_dir, history, data.scale, config, result)
    utils.save_json(results_dir / "metrics.json", result)
    return figures


def save_predictions(path, split, predictions):
    """predictions.npz: the split's validation and test indices and the predictions at them, so that runs on the
    same split can be combined without retraining (blend.py). It holds ratings' positions: never publish it with
    MovieLens or Netflix data (their licenses forbid redistribution)."""
    utils.write_atomic(path, lambda temporary: np.savez_compressed(
        temporary, val_index=split.val, val=predictions["val"], test_index=split.test, test=predictions["test"]))


def save_baseline_run(results_dir, name, data, split, predictions, result):
    """A baseline's folder, as a run's for blend.py: predictions.npz, config.json (which data), metrics.json."""
    results_dir = prepare_results_dir(results_dir)
    save_predictions(results_dir / "predictions.npz", split, predictions)
    utils.save_json(results_dir / "config.json", {"model": name, "dataset": data.dataset, "data_dir": data.data_dir,
                                                  "data_files": data.files,
                                                  "ratings_fingerprint": data_processor.ratings_fingerprint(data)})
    utils.save_json(results_dir / "metrics.json", result)


def plot_history(results_dir, history, scale, config, result):
    """loss.png and rmse.png: train and validation per epoch, the kept epoch and learning-rate changes marked;
    rmse.png shows the metric the results report beside the training metric."""
    low, high, _ = scale
    kept = result.get("kept_epoch")
    rmse_title = f"RMSE, predictions clipped to [{low:g}, {high:g}]"
    if config["model"] == "kernel":
        curves = [("loss", "Loss per rating (squared error / 2 + penalties / train ratings)", "loss", ["loss"]),
                  ("rmse", f"{rmse_title}: global", "RMSE", ["rmse_clip"])]
    else:  # the global RMSE (what the results report) beside the seed's per-user metric
        curves = [("loss", f"Loss ({config['loss']} + L2 penalty)", "loss", ["loss"]),
                  ("rmse", f"{rmse_title}: global (solid), per-user masked (dashed)", "RMSE",
                   ["rmse_clip", "masked_rmse_clip"])]
    paths = []
    for name, title, ylabel, metrics in curves:
        paths.append(results_dir / f"{name}.png")
        plot_curves(paths[-1], history, metrics, f"{title}\n{run_title(config)}", ylabel, kept,
                    result.get("val_rmse") if name == "rmse" else None)
    return paths


def plot_curves(path, history, metrics, title, ylabel, kept_epoch=None, reported_val_rmse=None):
    """Train vs validation curves of the metrics (the first solid, a second dashed), as the seed's figures, with
    the kept epoch, the epochs where the learning rate changed, and the validation RMSE (global) that
    metrics.json reports."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(figsize=(7, 4.8))
    for metric, style in zip(metrics, ["-", "--"]):
        suffix = "" if len(metrics) == 1 else (" (global)" if metric == "rmse_clip" else " (per-user)")
        nan = float("nan")  # epochs recorded before a metric existed (a resumed older run) have no value
        axes.plot(epochs, [row.get(metric, nan) for row in history], style, color="C0", label=f"train{suffix}")
        if any(f"val_{metric}" in row for row in history):  # a refit has none: it trains on those ratings
            axes.plot(epochs, [row.get(f"val_{metric}", nan) for row in history], style, color="C1",
                      label=f"validation{suffix}")
    rates = [row.get("learning_rate") for row in history]
    changes = [epoch for epoch, before, after in zip(epochs[1:], rates, rates[1:]) if after != before]
    for epoch in changes:
        axes.axvline(epoch, color="grey", linestyle=":", linewidth=1)
    if kept_epoch:
        axes.axvline(kept_epoch, color="green", linestyle="--", linewidth=1, label=f"kept epoch {kept_epoch}")
    if reported_val_rmse is not None:
        axes.axhline(reported_val_rmse, color="red", linestyle="-.", linewidth=1,
                     label=f"validation RMSE (global) {reported_val_rmse:.4f}")
    axes.set_xlabel("epoch (dotted: learning rate changed)" if changes else "epoch")
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # no epoch 1.5 on short runs
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    utils.write_atomic(path, lambda p: figure.savefig(p, dpi=110, format="png"))
    plt.close(figure)


def run_facts(history, kept_epoch, train_seconds, initial_epoch, split, precision, record):
    """What metrics.json records beside the metrics: epochs, the kept one, time, memory, sizes, the record.
    `train_seconds` are this session's, which resumed after `initial_epoch`: the run's training time adds the
    seconds its history recorded for the epochs before (their sessions' start-up not counted)."""
    earlier_seconds = sum(row["seconds"] for row in history[:initial_epoch])
    return {"epochs": len(history), "kept_epoch": kept_epoch,
            "train_seconds": round(earlier_seconds + train_seconds, 2),
            "seconds_per_epoch": round(train_seconds / max(len(history) - initial_epoch, 1), 4),
            "peak_memory_mb": round(utils.peak_memory_mb(), 1),
            "n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test),
            "precision": precision, "config": record}


REFIT = " (refit)"


def refit_row(name):
    """The name of a row's refit: 'bfm (refit)'."""
    return name + REFIT


def without_validation(result):
    """A refit's metrics: none on the validation ratings, which it trained on."""
    result = {**result, **{key: None for key in result if key.startswith("val_")}}
    if result.get("pre_training"):
        result["pre_training"] = without_validation(result["pre_training"])
    return result


def schedule_text(schedule):
    """A refit's schedule in words."""
    if "stage_epochs" in schedule:
        return "L-BFGS epochs per stage " + ", ".join(map(str, schedule["stage_epochs"]))
    rates = schedule["learning_rates"]
    return f"{len(rates)} epochs, learning rate {rates[0]:g}" + (f" to {rates[-1]:g}" if rates[-1] != rates[0] else "")


def print_result(result, results_dir):
    print()
    print_metrics(result)
    seconds = result["train_seconds"]
    print(f"Epochs: {result['epochs']} (kept: {result['kept_epoch']}), training time: {seconds:.1f} s "
          f"({result['seconds_per_epoch']:.3f} s/epoch)")
    print(f"Results in {results_dir}: metrics.json, config.json, ids.json, history.csv, loss.png, rmse.png, "
          f"model.keras, predictions.npz")


def print_metrics(result):
    """The figures of metrics.json, as main.py and evaluate.py print them."""
    print(f"Test masked RMSE (per-user, the seed's metric): {result['test_masked_rmse']:.4f}")
    print(f"Test RMSE (global, the literature's metric):    {result['test_rmse']:.4f}")
    if result["val_rmse"] is not None:
        print(f"Validation RMSE (global):                       {result['val_rmse']:.4f}")
    else:
        print("Validation RMSE (global):                       none: a refit trains on the validation ratings")
    if result["test_ndcg_at_10"] is not None:
        print(f"Test NDCG@10 / Recall@10:                       {result['test_ndcg_at_10']:.4f} / "
              f"{result['test_recall_at_10']:.4f}")


def summarise(runs):
    """Mean and standard deviation (sample, ddof=1; 0 for one run) of each metric over the runs."""
    summary = {}
    optional = [key for key in ["pre_training_test_rmse"] if any(key in run for run in runs)]
    for key in SUMMARY_KEYS + ["train_seconds"] + optional:
        values = [run[key] for run in runs if run.get(key) is not None]
        summary[f"{key}_mean"] = float(np.mean(values)) if values else None
        summary[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else (0.0 if values else None)
    return {**summary, "n_runs": len(runs), "runs": runs}


def run_summary(result, split_flags):
    """One run's line in summary.json."""
    keys = SUMMARY_KEYS + ["epochs", "train_seconds", "machines"]
    line = {**split_flags, **{key: result.get(key) for key in keys}}
    if result.get("pre_training"):  # GLocal-K: its pre-trained network alone, i.e. the sparsefc preset's run
        line["pre_training_test_rmse"] = result["pre_training"]["test_rmse"]
    return line


def save_summaries(results_dir, config, runs, tests=({}, None)):
    """--repeats: summary.json of the one configuration; --compare: the comparison table of every row, with the
    paired tests `tests` ({row: metrics.paired_tests}, the reference row). Each with mean ± std over the splits,
    printed too."""
    if not config["compare"]:
        summary = summarise(runs[config["preset"]])
        refit = runs.get(refit_row(config["preset"]))
        if refit:
            summary["refit"] = summarise(refit)
        utils.save_json(results_dir / "summary.json", summary)
        for name, rows in [(f"{config['preset']} preset", summary), (f"{config['preset']} preset refitted on train + "
                                                                      f"validation", summary.get("refit"))]:
            if rows:
                print(f"\n{name} on {config['dataset']}, split {config['split']}, {rows['n_runs']} runs: test RMSE "
                      f"(global) {rows['test_rmse_mean']:.4f} ± {rows['test_rmse_std']:.4f}, test masked RMSE "
                      f"(per-user) {rows['test_masked_rmse_mean']:.4f} ± {rows['test_masked_rmse_std']:.4f}")
        print(f"(summary.json in {results_dir})")
        return 0
    row_tests, reference = tests
    rows = [{"name": name, **summarise(model_runs), **row_tests.get(name, {})} for name, model_runs in runs.items()]
    heading = comparison_heading(config, reference, runs)
    title = (f"{config['dataset']}, split {config['split']}, {config['repeats']} split(s): test error, selected "
             f"on validation")
    save_comparison(results_dir, rows, heading, title)
    print(f"\nComparison written to {results_dir}/comparison.md:\n")
    print((results_dir / "comparison.md").read_text())
    return 0


def comparison_heading(config, reference, runs):
    """What a comparison table is: its command, data, protocol, machines, and how to read its tests."""
    command = "python3 main.py " + " ".join(flag for flag in config["argv"] if flag != "--resume")  # same table
    lines = [f"Made by `{command}`, {datetime.now(timezone.utc):%Y-%m-%d}; {machines_text(runs)}.",
             f"{config['dataset']}, split {config['split']}, {config['repeats']} split(s); test RMSE (global), "
             f"predictions clipped to the scale; every selection on validation ratings."]
    if config["refit"]:
        lines.append("(refit): the row's model trained again on train + validation for exactly the epochs validation "
                     "chose (the Bayesian rows, which choose nothing, simply fitted on both); the refit blend applies "
                     "the weights fitted on the train-only members' validation predictions to the refits' test "
                     "predictions.")
    if reference:
        lines.append(f"Δ: the row's mean test RMSE minus the strongest Bayesian row's ({reference}). p per split: "
                     f"Student's paired t-test on the two rows' squared errors over the same test ratings (the "
                     f"largest p of the splits); p across splits: paired t-test on the split RMSEs.")
    return lines


UNRECORDED_MACHINE = "a machine not recorded (runs and checkpoints older than that record)"


def machines_text(runs):
    """The machines that trained the rows' runs ({row: its runs}), each with its splits in the table's order: a
    table continued with --resume may have run on several, and its train seconds compare only on one."""
    order, splits = {}, {}  # {split label: its place}, {machine: its split labels}
    for run in (run for row_runs in runs.values() for run in row_runs):
        order.setdefault(split_label(run), len(order))
        if run.get("train_seconds") is None:
            continue  # nothing trained (a blend)
        for machine in run.get("machines") or [UNRECORDED_MACHINE]:
            splits.setdefault(machine, set()).add(split_label(run))
    if len(splits) <= 1:
        return f"trained on {next(iter(splits), 'no machine recorded')}"
    return "trained on " + "; ".join(f"{machine} ({', '.join(sorted(labels, key=order.get))})"
                                     for machine, labels in splits.items())


def save_comparison(results_dir, rows, heading=(), title=""):
    """comparison.csv, comparison.md (the heading, then a markdown table: a column per split, mean ± std, train
    seconds and the paired tests) and comparison.png (both test metrics per model). Each row is a model's summary
    over its runs (summarise), with its paired tests where it has them."""
    results_dir = Path(results_dir)
    columns = SUMMARY_KEYS
    splits = [split_label(run) for run in max((row["runs"] for row in rows), key=len)]
    table = [{"name": row["name"], "n_runs": row["n_runs"],
              **{f"test_rmse_{label}": run["test_rmse"] for label, run in zip(splits, row["runs"])},
              **{f"{key}_{stat}": row[f"{key}_{stat}"] for key in columns + ["train_seconds"]
                 for stat in ("mean", "std")},
              **{key: row.get(key) for key in ("test_rmse_difference", "p_per_split", "p_across_splits")}}
             for row in rows]
    utils.save_history_csv(results_dir / "comparison.csv", table)

    def cell(row, key, digits=4):
        mean, std = row[f"{key}_mean"], row[f"{key}_std"]
        if mean is None:
            return ""
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if row["n_runs"] > 1 else "")

    def tests(row):
        if row.get("test_rmse_difference") is None:
            return " | |"
        p_values = [p for p in row["p_per_split"] if p is not None]
        return (f" {row['test_rmse_difference']:+.4f} | {max(p_values):.2g} |" if p_values else " 0 | |") + (
            f" {row['p_across_splits']:.2g}" if row.get("p_across_splits") is not None else "")

    lines = [*heading, "", "| model | " + " | ".join(splits) + " | test RMSE (global) | test masked RMSE (per-user) "
             "| val RMSE (global) | test NDCG@10 | test Recall@10 | train seconds | Δ | p per split | "
             "p across splits |", "|---" * (len(splits) + 10) + "|"]
    for row in rows:
        per_split = [f"{run['test_rmse']:.4f}" for run in row["runs"]] + [""] * (len(splits) - len(row["runs"]))
        lines.append(f"| {row['name']} | " + " | ".join(per_split + [cell(row, key) for key in columns])
                     + f" | {cell(row, 'train_seconds', 0)} |{tests(row)} |")
    utils.write_atomic(results_dir / "comparison.md", lambda path: Path(path).write_text("\n".join(lines) + "\n"))
    plot_comparison(results_dir / "comparison.png", rows, title)


def split_label(run):
    """A split's column name: u1 ... u5, or the split seed."""
    return run["split"] if run["split"][0] == "u" else f"seed {run['split_seed']}"


def plot_comparison(path, rows, title=""):
    """Both test metrics of every row as horizontal bars (labels never overlap), their error bars the standard
    deviation over the splits, the axis starting just below the smallest error so that differences show."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in rows if row["test_rmse_mean"] is not None]
    figure, axes = plt.subplots(figsize=(9, 1.4 + 0.5 * len(rows)))
    positions = np.arange(len(rows))[::-1]
    several = rows[0]["n_runs"] > 1
    for offset, key, label in [(0.2, "test_rmse", "RMSE (global)"),
                               (-0.2, "test_masked_rmse", "masked RMSE (per-user)")]:
        bars = axes.barh(positions + offset, [row[f"{key}_mean"] for row in rows], height=0.4, label=label,
                         xerr=[row[f"{key}_std"] for row in rows] if several else None)
        axes.bar_label(bars, fmt="%.4f", fontsize=7, padding=3)
    axes.set_yticks(positions, [row["name"] for row in rows], fontsize=8)
    errors = [row[key] for row in rows for key in ("test_rmse_mean", "test_masked_rmse_mean")]
    axes.set_xlim(min(errors) - 0.03, max(errors) + 0.04)
    axes.set_xlabel("test error, lower is better" + (" (error bars: ± std over the splits)" if several else ""))
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    utils.write_atomic(path, lambda temporary: figure.savefig(temporary, dpi=110, format="png"))
    plt.close(figure)
