"""What a launch asks for, as typed values: built once from the command line, read by preflight, dry run and driver.

`LaunchRequest` is the command line's launch settings; `LaunchOptions` the part the driver needs to spread a
run over the cluster. Nothing below scripts/ sees an argparse namespace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class LaunchOptions:
    """How a run is spread over the cluster and where it writes."""

    results_dir: Path = Path("results")
    gpus: int = 0
    actors_per_gpu: int = 1
    cpu_actors: int = 1
    force: bool = False
    log_path: Path | None = None
    log_level: str = "INFO"
    owner: str | None = None  # who holds the output's lock, for the message a second launch gets
    started: float | None = None  # time.monotonic() when the launch began (timings); None: when the driver starts
    ray_start_s: float = 0.0  # launch start -> Ray up and the driver's modules imported, for the timings lines

    def __post_init__(self):
        if self.gpus < 0:
            raise ValueError(f"--gpus must be >= 0, got {self.gpus} (0 runs on the CPU)")
        if self.actors_per_gpu < 1 or self.cpu_actors < 1:
            raise ValueError("--actors-per-gpu and --cpu-actors must be >= 1")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log level {self.log_level!r} is unknown: use one of {', '.join(LOG_LEVELS)}")

    @property
    def n_actors(self) -> int:
        """How many ModelActors run."""
        return self.gpus * self.actors_per_gpu if self.gpus else self.cpu_actors

    def actor_resources(self) -> dict:
        """Ray resources of one ModelActor: a GPU (fraction), or one CPU."""
        return {"num_gpus": 1 / self.actors_per_gpu, "num_cpus": 1} if self.gpus else {"num_cpus": 1}

    def actor_name(self, index: int) -> str:
        """ModelActor:gpu0, ModelActor:gpu0.1 (second actor of GPU slot 0), ModelActor:cpu0."""
        if not self.gpus:
            return f"ModelActor:cpu{index}"
        slot, share = divmod(index, self.actors_per_gpu)
        return f"ModelActor:gpu{slot}" + (f".{share}" if self.actors_per_gpu > 1 else "")


@dataclass(frozen=True)
class LaunchRequest:
    """One launch as the command line asks for it: where it runs and writes, and what it does first."""

    results_dir: Path = Path("results")
    logs_dir: Path = Path("logs")
    gpus: int = 1
    actors_per_gpu: int = 1
    cpu_actors: int = 1
    force: bool = False
    address: str | None = None  # an existing Ray cluster ('auto', HOST:PORT); None starts a local one
    sweep: str | None = None  # the sweep's name, for the log file of a multi-variant launch
    dry_run: bool = False
    log_level: str = "INFO"
    started: float = field(default_factory=time.monotonic)  # time.monotonic() at the top of the launch script

    def __post_init__(self):
        self.options()  # the same checks, with the same messages, before anything starts

    @property
    def n_actors(self) -> int:
        """How many ModelActors the run starts."""
        return self.options().n_actors

    def options(self, log_path: Path | None = None, owner: str | None = None) -> LaunchOptions:
        """The driver's options of this launch."""
        return LaunchOptions(results_dir=Path(self.results_dir), gpus=self.gpus, actors_per_gpu=self.actors_per_gpu,
                             cpu_actors=self.cpu_actors, force=self.force, log_path=log_path,
                             log_level=self.log_level, owner=owner, started=self.started)
