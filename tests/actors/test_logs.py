"""An actor's log lines, and its Python warnings, reach the run's log file through a real LogSink."""

from __future__ import annotations

import logging
import time

import ray

from actors.logs import LogSink, setup_actor_logging


@ray.remote(num_cpus=0)
class Speaker:
    """A tiny actor that logs the way a ModelActor does."""

    def __init__(self, sink_name: str):
        setup_actor_logging(sink_name, "Speaker", "INFO")

    def speak(self) -> None:
        import warnings

        import torch

        logging.getLogger("degrader.test").info("a log line")
        warnings.warn("a plain warning")
        from torch._prims_common import alert_not_deterministic

        # as make_repeatable, then torch's alert for an op with no deterministic implementation (the ops that
        # raise it are CUDA ops; C++ alerts reach Python as the same UserWarning)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            alert_not_deterministic("an op")
        finally:
            torch.use_deterministic_algorithms(False)
        logging.getLogger().handlers[0].flush()


def test_an_actors_lines_and_warnings_reach_the_run_log(ray_cluster, tmp_path):
    path = tmp_path / "run.log"
    sink = LogSink.options(name="LogSink:test-logs").remote(str(path))
    speaker = Speaker.remote("LogSink:test-logs")
    ray.get(speaker.speak.remote())
    deadline = time.monotonic() + 30
    while "deterministic" not in (path.read_text() if path.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.2)
    log = path.read_text()
    ray.kill(speaker)
    ray.kill(sink)
    assert "INFO [Speaker] a log line" in log
    assert "WARNING [Speaker]" in log and "UserWarning: a plain warning" in log
    assert "UserWarning: an op does not have a deterministic implementation" in log
