"""Run logs: one file per run, with the driver's lines and every actor's, never generated text.

Actors may run on other nodes, so they do not write the file themselves: a `RemoteLogHandler`
ships their formatted lines to the `LogSink` actor, which lives on the driver's node.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

import ray

FORMAT = "%(asctime)s %(levelname)s [%(origin)s] %(message)s"
QUIET_LIBRARIES = ("transformers", "urllib3", "filelock", "httpx", "huggingface_hub")


class OriginFilter(logging.Filter):
    """Stamps each record with where it comes from (driver, ModelActor:gpu0 on GPU 1, ...)."""

    def __init__(self, origin: str):
        super().__init__()
        self.origin = origin

    def filter(self, record: logging.LogRecord) -> bool:
        record.origin = self.origin
        return True


def log_path(logs_dir: Path, experiment_id: str) -> Path:
    """logs/<experiment_id>_<timestamp>.log"""
    return Path(logs_dir) / f"{experiment_id}_{datetime.now().strftime('%Y%m%d_%H%M%S')}.log"


def setup_driver_logging(path: Path, level: str) -> None:
    """Console and file handlers for the driver process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(path, encoding="utf-8")):
        handler.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
        handler.addFilter(OriginFilter("driver"))
        root.addHandler(handler)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


@ray.remote(num_cpus=0)
class LogSink:
    """Appends actors' log lines to the run's log file (on the driver's node)."""

    def __init__(self, path: str | None):
        self.path = path  # None: lines are dropped (library use without a run log)

    def write(self, lines: list[str]) -> None:
        """Append formatted lines."""
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))


class RemoteLogHandler(logging.Handler):
    """Sends each formatted line to the LogSink."""

    def __init__(self, sink, origin: str):
        super().__init__()
        self.sink = sink
        self.last = None  # the last line's write call, for flush
        self.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
        self.addFilter(OriginFilter(origin))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.last = self.sink.write.remote([self.format(record)])
        except Exception:  # a log line must never take an actor down
            self.handleError(record)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (at most `timeout` seconds) until the sink has the lines sent so far: before a process ends itself."""
        if self.last is not None:
            ray.wait([self.last], timeout=timeout)


def setup_actor_logging(sink_name: str | None, origin: str, level: str) -> None:
    """Route this actor process's logging to the run's log file, through the LogSink actor named `sink_name`.

    The sink is looked up by name (not passed as a handle) so that a restartable actor's constructor takes
    only plain values. None: the lines are dropped.
    """
    root = logging.getLogger()
    root.handlers = [RemoteLogHandler(ray.get_actor(sink_name), origin) if sink_name else logging.NullHandler()]
    root.setLevel(level)
    if sink_name:  # Python warnings as WARNING lines of "py.warnings" in the run log, instead of the process's
        # stderr, at any --log-level: among them the alert of an op with no deterministic implementation, which
        # would stop GPU records from repeating (degrader/decoding/repeatable.py)
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").setLevel(logging.WARNING)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    import transformers

    transformers.utils.logging.disable_progress_bar()
