"""tf.distribute on this CPU: two logical devices under MirroredStrategy, and two worker processes on localhost
under MultiWorkerMirroredStrategy, take the same steps as one device with the same global batch. Each run is a
subprocess: logical devices and strategies cannot change once TensorFlow has started."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import PROJECT_DIR, write_movielens

# Dropout off: each replica draws its own dropout masks, which one device cannot reproduce.
TINY = ["--layers", "16,8,16", "--dropout", "0", "--batch-size", "32", "--learning-rate", "0.01", "--epochs", "2",
        "--precision", "float32"]
TOLERANCE = 1e-4  # float32 sums taken in another order: losses and weights agree to about 1e-6 here


def start(args, env=None):
    return subprocess.Popen([sys.executable, str(PROJECT_DIR / "main.py"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COMET_API_KEY": "", **(env or {})})


def finish(process):
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


def losses(results):
    lines = (results / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    return np.array([[float(value) for key, value in zip(header, line.split(",")) if "loss" in key or "rmse" in key]
                     for line in lines[1:]])


def same_training(one, other):
    np.testing.assert_allclose(losses(one), losses(other), rtol=TOLERANCE)
    import model  # noqa: F401  (registers the autoencoder with Keras)

    for left, right in zip(keras.models.load_model(one / "model.keras").get_weights(),
                           keras.models.load_model(other / "model.keras").get_weights()):
        np.testing.assert_allclose(left, right, atol=TOLERANCE)
    first, second = (json.loads((path / "metrics.json").read_text()) for path in (one, other))
    assert first["test_rmse"] == pytest.approx(second["test_rmse"], abs=TOLERANCE)


# Each loss and each orientation once: the loss decides how the replicas' sums are reduced, the orientation which
# matrix is batched; neither changes what the other does.
@pytest.mark.parametrize("loss, orientation", [("masked_rmse", "user"), ("masked_mse", "item")])
def test_two_mirrored_devices_take_the_steps_of_one(tmp_path, loss, orientation):
    folder = write_movielens(tmp_path / "ml-1m")
    common = ["--data-dir", folder, "--loss", loss, "--orientation", orientation, *TINY]
    single = start([*common, "--results-dir", tmp_path / "one"])
    finish(single)
    finish(start([*common, "--results-dir", tmp_path / "two", "--distribute", "mirrored", "--devices", "2"]))
    same_training(tmp_path / "one", tmp_path / "two")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_workers_on_localhost_agree_with_one_process_and_only_the_chief_writes(tmp_path):
    folder = write_movielens(tmp_path / "ml-1m")
    common = ["--data-dir", folder, "--loss", "masked_mse", *TINY]
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = [start([*common, "--results-dir", tmp_path / f"worker-{index}", "--distribute", "multi-worker"],
                     env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                          "TF_NUM_INTRAOP_THREADS": "1"})
               for index in range(2)]
    for worker in workers:
        finish(worker)
    finish(start([*common, "--results-dir", tmp_path / "one"]))
    same_training(tmp_path / "one", tmp_path / "worker-0")
    assert not (tmp_path / "worker-1").exists()  # the other worker wrote into a temporary folder only
