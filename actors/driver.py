"""The driver: plans the missing units, starts the actors and keeps every actor busy.

Units are handed out one at a time per actor and taken back as they finish (`ray.wait`), never in
submission order. An actor that dies mid-unit is restarted by Ray; its unit goes back in the queue
with only the prompts the writer has not recorded. Ctrl-C closes the writer cleanly (every
received record is kept); SIGKILL loses at most the records not yet flushed, and the same command
finishes the run.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.logs import LogSink
from actors.model_actor import ModelActor
from degrader.run.plan import Unit, missing_units, output_path, total_records
from actors.progress import Progress
from degrader.run.store import StoreWriteError
from actors.writer import ResultWriter
from configs.experiments import ExperimentConfig

logger = logging.getLogger(__name__)
MAX_UNIT_FAILURES = 3


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


def local_pin() -> NodeAffinitySchedulingStrategy:
    """Schedule on the driver's node (the results and logs folders are there)."""
    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def run_experiment(config: ExperimentConfig, options: LaunchOptions) -> dict:
    """Run every missing (unit, prompt) of `config`; returns a summary. Ray must be initialised."""
    return run_sweep([config], options)[0]


def run_sweep(configs: list[ExperimentConfig], options: LaunchOptions) -> list[dict]:
    """Run each variant in turn on the same actors, which keep their model loaded between variants."""
    sink = LogSink.options(name="LogSink", scheduling_strategy=local_pin()).remote(
        str(options.log_path) if options.log_path else None)
    actors: list = []  # started by the first variant with work, killed at the end so GPUs and names free
    try:
        return [_run_variant(config, options, sink, actors) for config in configs]
    finally:
        for actor in [*actors, sink]:
            ray.kill(actor, no_restart=True)


def _run_variant(config: ExperimentConfig, options: LaunchOptions, sink, actors: list) -> dict:
    path = output_path(config, options.results_dir)
    writer = ResultWriter.options(name=f"ResultWriter:{path.stem.removeprefix('outputs_')}",
                                  scheduling_strategy=local_pin()).remote(str(path.resolve()), options.force,
                                                                          owner=options.owner)
    try:
        opened = ray.get(writer.open.remote())  # raises OutputLockedError / CorruptOutputError / StoreWriteError
        for moved in opened["moved_aside"]:
            logger.info("--force: previous output moved aside to %s", moved)
        if opened["conflicts"]:
            logger.warning("%d records repeat the key of another record of %s with different content: kept aside "
                           "in %s (not in the output)", opened["conflicts"], path, opened["conflicts_path"])
        try:
            return _run(config, options, path, writer, sink, actors)
        finally:
            logger.info("output %s holds %d records", path, ray.get(writer.close.remote()))
    finally:
        ray.kill(writer, no_restart=True)


def _run(config: ExperimentConfig, options: LaunchOptions, path: Path, writer, sink, actors: list) -> dict:
    done = ray.get(writer.done_keys.remote())
    units = missing_units(config, done)
    total = total_records(config)
    logger.info("output %s: %d of %d records done, %d units to run on %d actors", path, total - sum(
        len(u.prompt_ids) for u in units), total, len(units), options.n_actors)
    if not units:
        return {"output": str(path), "records": total, "ran_units": 0}
    if actors:
        reps = ray.get([actor.set_variant.remote(config, writer) for actor in actors])
    else:
        reps = _start_actors(config, options, writer, sink, actors)
    sizes = dict(zip(actors, batch_sizes(len(units), reps)))
    restarting = _warm_up(sizes)
    progress = Progress(total, total - sum(len(u.prompt_ids) for u in units))
    try:
        ran = Scheduler(config, actors, writer, progress, sizes).run(deque(units), restarting)
    finally:
        progress.close()
    return {"output": str(path), "records": total, "ran_units": ran}


def _start_actors(config, options: LaunchOptions, writer, sink, actors: list) -> list[int]:
    """Start and load the ModelActors into `actors`; returns the most units each one may decode per batch."""
    actors += [ModelActor.options(name=options.actor_name(i), scheduling_strategy="SPREAD",
                                  **options.actor_resources()).remote(config, options.actor_name(i), writer, sink,
                                                                      options.log_level)
               for i in range(options.n_actors)]
    descriptions = ray.get([actor.load.remote() for actor in actors])
    for description in descriptions:
        logger.info("%s ready (pid %s): %s, %s, units per batch: %d", description["actor"], description["pid"],
                    description["architecture"], description["dtype"], description["units_per_batch"])
    return [description["units_per_batch"] for description in descriptions]


def _warm_up(sizes: dict) -> list:
    """Every actor sizes its batches and compiles its decode step, all at once, before the first unit.

    A warm-up only saves time: one that fails is logged, and the actor compiles on its first batch
    instead. Returns the actors that died meanwhile (Ray restarts them without the current variant).
    """
    refs = {actor.warm_up.remote(size): (actor, size) for actor, size in sizes.items()}
    died = []
    for ref, (actor, size) in refs.items():
        try:
            logger.info("warm-up for %d units per batch: %.1fs", size, ray.get(ref))
        except ray.exceptions.RayError as error:
            logger.warning("warm-up failed (%s: %s)", type(error).__name__, str(error).splitlines()[0][:200])
            if isinstance(error, ray.exceptions.RayActorError):
                died.append(actor)
    return died


def take_batch(queue: deque[Unit], size: int) -> list[Unit]:
    """The next unit and up to size - 1 more with the same prompts (of any level): one batch for an actor."""
    first = queue.popleft()
    chosen = [u for u in queue if u.prompt_ids == first.prompt_ids][: size - 1]
    for unit in chosen:
        queue.remove(unit)
    return [first, *chosen]


def batch_sizes(n_units: int, most: list[int]) -> list[int]:
    """Units per batch for each actor, so that all finish in the same number of rounds.

    With at most `most[a]` units per batch, the queue takes rounds = ceil(n / sum(most)); each actor's
    batch shrinks to its share of that: 50 units on 2 actors of at most 10 are 3 rounds of 9 each, not
    3 rounds for one actor and 2 for the other. Each actor warms up for its size, so its stacks and
    compiled decoder hold exactly that many (fewer rows: a faster step).
    """
    rounds = -(-n_units // sum(most))
    return [max(1, min(m, -(-m * n_units // (rounds * sum(most))))) for m in most]


class Scheduler:
    """Keeps one batch of units in flight per actor; requeues the units of an actor that died.

    A batch is one unit, or several units with the same prompts for an actor that rep-batches, sized
    so that the actors finish together (`batch_sizes`). An actor
    that died is pinged until Ray has restarted it (its __init__ ran again) and given the current
    variant again before it gets more units, so a restart costs its units one retry.
    """

    def __init__(self, config: ExperimentConfig, actors: list, writer, progress: Progress, sizes: dict):
        self.config, self.actors, self.writer, self.progress = config, actors, writer, progress
        self.sizes = sizes  # actor -> units per batch
        self.failures: dict[tuple[float, int], int] = {}
        self.in_flight: dict = {}  # ref -> (actor, units), no units for a readiness ping

    def run(self, queue: deque[Unit], restarting: list = ()) -> int:
        """Run every unit of `queue`; returns how many units completed. `restarting`: actors that died since
        they got the current variant (pinged first, then given it again)."""
        idle, completed = [a for a in self.actors if a not in restarting], 0
        for actor in restarting:
            self.in_flight[actor.pid.remote()] = (actor, [])
        while queue or any(units for _, units in self.in_flight.values()):
            while idle and queue:
                actor = idle.pop()
                units = take_batch(queue, self.sizes[actor])
                self.in_flight[actor.run_units.remote(units)] = (actor, units)
            ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=1.0)
            self.progress.update(ray.get(self.writer.count.remote()))
            for ref in ready:
                actor, units = self.in_flight.pop(ref)
                finished = self._settle(ref, actor, units, queue)
                if finished is not None:
                    idle.append(actor)
                    completed += finished
        return completed

    def _settle(self, ref, actor, units: list[Unit], queue: deque[Unit]) -> int | None:
        """How many units finished when `actor` is ready for more; None when it died (a ping is then in flight)."""
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as error:  # the units raised (e.g. out of memory at batch 1)
            self._check_writer()
            if not units:
                raise
            self._requeue(units, error, queue)
            return 0
        except ray.exceptions.RayActorError as error:
            self._requeue(units, error, queue)
            if not units and isinstance(error, ray.exceptions.ActorDiedError):
                self._drop(actor, error)  # Ray could not restart it (e.g. its node is gone)
            else:
                self.in_flight[actor.pid.remote()] = (actor, [])
            return None
        if units:
            self.progress.add_tokens(sum(report.tokens for report in result))
        else:  # a restarted actor starts from its constructor's arguments: give it this variant again
            actor.set_variant.remote(self.config, self.writer)
        return len(units)

    def _check_writer(self) -> None:
        """Stop the run when the writer could not save records: retrying would only generate more unsaved ones."""
        failure = ray.get(self.writer.failure.remote())
        if failure is not None:
            raise StoreWriteError(failure)

    def _drop(self, actor, error: Exception) -> None:
        self.actors.remove(actor)
        logger.error("an actor is gone for good (%s); %d actors left", error, len(self.actors))
        if not self.actors:
            raise RuntimeError("every ModelActor died and none could be restarted") from error

    def _requeue(self, units: list[Unit], error: Exception, queue: deque[Unit]) -> None:
        if not units:
            return
        done = ray.get(self.writer.done_keys.remote())
        missing = {(u.level, u.repeat_index): u for u in missing_units(self.config, done)}
        for unit in units:
            key = (unit.level, unit.repeat_index)
            self.failures[key] = self.failures.get(key, 0) + 1
            if self.failures[key] >= MAX_UNIT_FAILURES:
                raise RuntimeError(f"unit {unit.label} failed {MAX_UNIT_FAILURES} times; last error: {error}") from error
            remaining = missing.get(key)
            logger.warning("unit %s failed (%s: %s); requeued with %d missing prompts", unit.label, type(error).__name__,
                           str(error).splitlines()[0][:200], len(remaining.prompt_ids) if remaining else 0)
            if remaining:
                queue.append(remaining)
