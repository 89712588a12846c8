"""Atomic writes and the CometML wrapper's failure handling."""

import json

import pytest

import comet_logger
import utils


def test_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    utils.save_json(target, {"test_rmse": 0.9})

    def failing_writer(path):
        path.write_text("{ half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        utils.write_atomic(target, failing_writer)
    assert json.loads(target.read_text()) == {"test_rmse": 0.9}
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_path_keeps_keras_suffixes(tmp_path):
    assert utils.atomic_path(tmp_path / "checkpoint.weights.h5").name.endswith(".weights.h5")
    assert utils.atomic_path(tmp_path / "model.keras").name.endswith(".keras")


def test_comet_logger_error_warns_once_and_turns_off(monkeypatch, capsys):
    monkeypatch.delenv("COMET_API_KEY", raising=False)
    monkeypatch.delenv("COMET_MODE", raising=False)
    logger = comet_logger.CometLogger("project", ".")
    assert logger.experiment is None and "CometML logging is off" in capsys.readouterr().out

    class Broken:
        def log_metrics(self, *args, **kwargs):
            raise ConnectionError("no network")

    logger.experiment = Broken()
    logger.log_metrics({"loss": 1.0}, epoch=1)
    logger.log_metrics({"loss": 0.5}, epoch=2)
    output = capsys.readouterr().out
    assert output.count("CometML logging failed") == 1 and "no network" in output
    assert logger.experiment is None
