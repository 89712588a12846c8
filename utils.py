"""Files: atomic writes (JSON, CSV, anything a function writes), Ctrl-C held back while they happen, the program's
version, peak memory; progress that stays readable in a log. NumPy only."""

import contextlib
import csv
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

class ConfigError(Exception):
    """A hyperparameter or setting the program cannot run with; the message names the flag and the accepted
    values."""


MINIMUM_PYTHON = (3, 11)  # numpy 2.4, pandas 3.1, scipy 1.17, scikit-learn 1.9 and keras 3.15 need it
if sys.version_info < MINIMUM_PYTHON:  # every script imports this module first
    sys.exit(f"error: this program needs Python {'.'.join(map(str, MINIMUM_PYTHON))} or newer; this is Python "
             f"{sys.version.split()[0]}. Fix: install Python 3.11 (or newer), then pip install -r requirements.txt "
             f"with it.")

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


def read_history_csv(path):
    """history.csv back as per-epoch dicts, numbers as numbers (a stage's name stays text)."""
    def value(text):
        try:
            return float(text) if text else None
        except ValueError:
            return text

    with open(path, newline="") as handle:
        return [{key: int(text) if key == "epoch" else value(text) for key, text in row.items()}
                for row in csv.DictReader(handle)]


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


def resident_memory_mb(field="VmRSS"):
    """This process's resident memory now (VmRSS) or at its peak since the last reset_peak_memory (VmHWM), from
    Linux' /proc/self/status; None elsewhere."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith(field + ":")), None)


def reset_peak_memory():
    """Restart Linux' peak counter (VmHWM) at the current resident memory; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------------------------
# Progress that stays readable in a log file.

class Progress:
    """Progress of `total` steps: one line redrawn in place on a terminal; in a file or pipe, a plain line at most
    every `every` seconds and one at the end, no carriage returns or escape codes."""

    def __init__(self, total, unit, every=10.0, stream=None):
        self.total, self.unit, self.every = total, unit, every
        self.stream = stream or sys.stdout
        self.terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.count, self.values = 0, {}
        self.started = self.shown = time.perf_counter()

    def add(self, steps=1, **values):
        self.count += steps
        self.values.update(values)
        now = time.perf_counter()
        if self.terminal:
            self.stream.write("\r" + self.text(now))
            self.stream.flush()
        elif now - self.shown >= self.every:
            self.stream.write(self.text(now) + "\n")
            self.stream.flush()
            self.shown = now

    def done(self):
        """End the display: the final line, whatever was shown before."""
        self.stream.write(("\r" if self.terminal else "") + self.text(time.perf_counter()) + "\n")
        self.stream.flush()

    def text(self, now):
        values = "".join(f", {name} {value:.6g}" for name, value in self.values.items())
        return f"  {self.count}/{self.total} {self.unit}s, {now - self.started:.1f} s{values}"


def cpu_description():
    """This machine's CPU, its cores and whether it multiplies bfloat16 natively (AMX, AVX-512 BF16), from Linux'
    /proc/cpuinfo: what every time this program reports was measured on."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"unknown CPU, {os.cpu_count()} cores"
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    kind = ("AMX" if "amx_bf16" in flags else "AVX-512 BF16" if "avx512_bf16" in flags
            else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2")
    return f"{name}, {os.cpu_count()} cores, {kind}"


def machine_description():
    """cpu_description and the GPUs TensorFlow sees: the machine a run trained on, whose speed its times measure."""
    import tensorflow as tf

    gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", "GPU")
            for gpu in tf.config.list_physical_devices("GPU")]
    return cpu_description() + (f", {len(gpus)} GPU(s): {', '.join(sorted(set(gpus)))}" if gpus else "")
