"""An actor's log lines, and its Python warnings, reach the run's log file through a real LogSink."""

from __future__ import annotations

import logging

import ray

from actors.logs import LogSink, setup_actor_logging
from tests.actors.conftest import wait_for


@ray.remote(num_cpus=0)
class Speaker:
    """A tiny actor that logs the way a ModelActor does."""

    def __init__(self, sink_name: str, level: str):
        setup_actor_logging(sink_name, "Speaker", level)

    def speak(self) -> None:
        import warnings

        import torch
        from torch._prims_common import alert_not_deterministic

        logging.getLogger("degrader.test").info("a log line")
        warnings.warn("a plain warning")
        # as make_repeatable, then torch's alert for an op with no deterministic implementation (the ops that
        # raise it are CUDA ops; C++ alerts reach Python as the same UserWarning)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            alert_not_deterministic("an op")
        finally:
            torch.use_deterministic_algorithms(False)
        logging.getLogger().handlers[0].flush()


def speak_into(path, level: str) -> str:
    """What a Speaker at log `level` leaves in the run log at `path`, once its alert is there."""
    name = f"LogSink:test-logs-{level}"
    sink = LogSink.options(name=name).remote(str(path))
    speaker = Speaker.remote(name, level)
    try:
        ray.get(speaker.speak.remote(), timeout=120)
        return wait_for(lambda: path.exists() and "deterministic" in path.read_text() and path.read_text(), 60)
    finally:
        ray.kill(speaker)
        ray.kill(sink)


def test_an_actors_lines_and_warnings_reach_the_run_log(ray_cluster, tmp_path):
    log = speak_into(tmp_path / "run.log", "INFO")
    assert "INFO [Speaker] a log line" in log
    assert "WARNING [Speaker]" in log and "UserWarning: a plain warning" in log
    assert "UserWarning: an op does not have a deterministic implementation" in log


def test_warnings_reach_the_run_log_whatever_the_log_level(ray_cluster, tmp_path):
    log = speak_into(tmp_path / "run.log", "ERROR")
    assert "a log line" not in log  # the level holds for log lines
    assert "UserWarning: an op does not have a deterministic implementation" in log
