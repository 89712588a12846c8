"""Files: atomic writes of results (JSON, CSV, figures), the program's version, peak memory. NumPy only."""

import contextlib
import csv
import json
import os
import resource
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np

UMASK = os.umask(0o022)
os.umask(UMASK)


# ----------------------------------------------------------------------------------------------------------------
# Saving: every file is written to a temporary name in the same folder, then renamed over the target, so an
# interrupted write leaves either the old file or the new one, never a broken one.

def atomic_path(path):
    """A temporary path next to `path`; the caller writes it and then calls os.replace(temporary, path)."""
    path = Path(path)
    suffix = "".join(path.suffixes)  # Keras wants '.keras' and '.weights.h5' endings
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:-len(suffix) or None]}-",
                                         suffix=suffix)
    os.close(handle)
    return Path(temporary)


@contextlib.contextmanager
def stop_signals_held():
    """Ctrl-C and SIGTERM wait until the block ends, so that the files a checkpoint writes in it always belong
    together."""
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def write_atomic(path, write):
    """Call write(temporary_path), then move the result over `path`."""
    temporary = atomic_path(path)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp creates files readable by their owner only
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_json(path, data):
    write_atomic(path, lambda p: Path(p).write_text(json.dumps(data, indent=2, default=_json_default) + "\n"))


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_history_csv(path, history):
    """history: list of per-epoch dicts (epoch plus Keras' logs)."""
    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[0].keys()))
            writer.writeheader()
            writer.writerows(history)
    write_atomic(path, write)


def plot_curves(path, history, metric, title, ylabel):
    """Train vs validation curve of one metric, as the seed's figures."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(epochs, [row[metric] for row in history], label="train")
    axes.plot(epochs, [row[f"val_{metric}"] for row in history], label="validation")
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    write_atomic(path, lambda p: figure.savefig(p, dpi=110, format="png"))
    plt.close(figure)


def program_version():
    """The git commit of this program (with '+changes' when the tree has uncommitted edits), or None outside git."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                 capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (commit + ("+changes" if changed else "")) or None


def peak_memory_mb():
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_comparison(results_dir, rows):
    """comparison.csv, comparison.md (a markdown table) and comparison.png (both test metrics per model). Each row
    is a model's summary over its runs (main.summarise): mean ± std where there is more than one run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results_dir = Path(results_dir)
    columns = ["test_rmse", "test_masked_rmse", "val_rmse", "test_ndcg_at_10", "test_recall_at_10"]
    table = [{"name": row["name"], "n_runs": row["n_runs"],
              **{f"{key}_{stat}": row[f"{key}_{stat}"] for key in columns + ["train_seconds"]
                 for stat in ("mean", "std")}} for row in rows]
    save_history_csv(results_dir / "comparison.csv", table)

    def cell(row, key, digits=4):
        mean, std = row[f"{key}_mean"], row[f"{key}_std"]
        if mean is None:
            return ""
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if row["n_runs"] > 1 else "")

    lines = ["| model | test RMSE (global) | test masked RMSE (seed, per-user) | val RMSE (global) | test NDCG@10 | "
             "test Recall@10 | train seconds |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | " + " | ".join(cell(row, key) for key in columns)
                     + f" | {cell(row, 'train_seconds', 0)} |")
    write_atomic(results_dir / "comparison.md", lambda path: Path(path).write_text("\n".join(lines) + "\n"))

    figure, axes = plt.subplots(figsize=(8, 4.5))
    positions = np.arange(len(rows))
    for offset, key, label in [(-0.2, "test_masked_rmse", "masked RMSE (seed, per-user)"),
                               (0.2, "test_rmse", "RMSE (global)")]:
        bars = axes.bar(positions + offset, [row[f"{key}_mean"] for row in rows], width=0.4, label=label,
                        yerr=[row[f"{key}_std"] for row in rows] if rows[0]["n_runs"] > 1 else None)
        axes.bar_label(bars, fmt="%.3f", fontsize=7)
    axes.set_xticks(positions, [row["name"] for row in rows], rotation=15)
    axes.set_ylim(0.6, max(max(row["test_rmse_mean"], row["test_masked_rmse_mean"]) for row in rows) + 0.05)
    axes.set_ylabel("test error (lower is better)")
    axes.legend()
    figure.tight_layout()
    write_atomic(results_dir / "comparison.png", lambda path: figure.savefig(path, dpi=110, format="png"))
    plt.close(figure)
