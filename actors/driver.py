"""The driver: plans the missing units and keeps every actor of the fleet busy until they are done.

Units are handed out one batch at a time per actor and taken back as they finish (`ray.wait`, in
actors/fleet.py), never in submission order. An actor that dies mid-unit is restarted by Ray; its
units go back in the queue with only the prompts the writer has not recorded. Ctrl-C closes the
writer cleanly (every received record is kept); SIGKILL loses at most the records not yet flushed,
and the same command finishes the run.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path

import ray

from actors.fleet import ActorFleet, BatchResult, Outcome, first_line, local_pin
from actors.logs import LogSink
from actors.progress import Progress, VariantTimings
from actors.writer import ResultWriter
from configs.experiments import ExperimentConfig
from degrader.run.options import LaunchOptions
from degrader.run.plan import Unit, group_batch_sizes, group_key, missing_units, output_path, total_records, total_units
from degrader.run.store import StoreWriteError, closed_cleanly

__all__ = ["compile_ahead", "local_pin", "peers", "run_experiment", "run_order", "run_sweep", "take_batch"]
logger = logging.getLogger(__name__)
MAX_UNIT_FAILURES = 3
SINK_NAME = "LogSink"  # ModelActors look the run's log sink up by this name (a handle would go into the object store)


def run_experiment(config: ExperimentConfig, options: LaunchOptions) -> dict:
    """Run every missing (unit, prompt) of `config`; returns a summary. Ray must be initialised."""
    return run_sweep([config], options)[0]


def run_sweep(configs: list[ExperimentConfig], options: LaunchOptions, missing: list[int] | None = None) -> list[dict]:
    """Run each variant in turn on the same actors, which keep their model loaded between variants.

    `missing`: records still missing per config (preflight's count): the actors are then launched for the first
    variant with work before its output opens, so that they load meanwhile, and a variant with none missing is
    not opened (`_must_open`)."""
    sink = LogSink.options(name=SINK_NAME, scheduling_strategy=local_pin()).remote(
        str(options.log_path) if options.log_path else None)
    fleet = ActorFleet(options, SINK_NAME)  # started by the first variant with work
    started = options.started if options.started is not None else time.monotonic()
    order = run_order(configs)
    if order != sorted(order):
        logger.info("variants run grouped by task and parameter group, so that actors keep their unit stacks and "
                    "compiled decoders between them: %s", ", ".join(configs[i].name_suffix for i in order))
    try:
        first = next((i for i in order if missing[i]), None) if missing is not None else None
        if first is not None:
            fleet.launch(configs[first])
        ahead = compile_ahead(configs, order, missing, options.n_actors - 1)
        summaries = {}
        for i in order:
            path = output_path(configs[i], options.results_dir)
            if _must_open(path, missing[i] if missing is not None else None):
                summaries[i] = _run_variant(configs[i], options, fleet, started, peers(configs, i), ahead.get(i, []))
            else:
                summaries[i] = _counted_done(path, total_records(configs[i]))
        return [summaries[i] for i in range(len(configs))]
    finally:
        fleet.kill()  # so GPUs and actor names are free again
        ray.kill(sink, no_restart=True)


def run_order(configs: list[ExperimentConfig]) -> list[int]:
    """The order the variants run in: those of one task and parameter group one after another, groups in the
    order they first appear. A variant of the group an actor holds reuses its stacks and compiled decoder."""
    first: dict[tuple[str, str], int] = {}
    for config in configs:
        first.setdefault(group_key(config), len(first))
    return sorted(range(len(configs)), key=lambda i: first[group_key(configs[i])])


def peers(configs: list[ExperimentConfig], index: int) -> list[ExperimentConfig]:
    """The other variants of `configs[index]`'s task and parameter group: they share its compiled decoders."""
    key = group_key(configs[index])
    return [other for i, other in enumerate(configs) if i != index and group_key(other) == key]


def compile_ahead(configs: list[ExperimentConfig], order: list[int], missing: list[int] | None,
                  helpers: int) -> dict[int, list[tuple[ExperimentConfig, list[int]]]]:
    """The later groups whose decode steps the actors but the first compile while a group's first variant warms
    up: the next groups (their first variant with work) in run order, one per helper, each handed out once.

    Each new group's step would otherwise be compiled by every actor at once when the group starts (40-55 s
    cold on an H200); this way one actor compiles it early, the others load it (docs/design.md, "Groups
    compiled ahead"). Each comes with the units of its group's variants (its own first), which size its batches.
    With `missing` (records per config), groups without work are left out."""
    firsts, seen = [], set()
    for i in order:
        if (missing is None or missing[i]) and group_key(configs[i]) not in seen:
            seen.add(group_key(configs[i]))
            firsts.append(i)
    plan, handed = {}, 1
    for position, i in enumerate(firsts):
        handed = max(handed, position + 1)
        plan[i] = [(configs[j], [total_units(configs[j]), *map(total_units, peers(configs, j))])
                   for j in firsts[handed:handed + max(0, helpers)]]
        handed += len(plan[i])
    return plan


def _must_open(path: Path, missing: int | None) -> bool:
    """Whether a variant's output must be opened: records missing by preflight's count (or no count), or the file
    not as a clean close left it (gone since the count, a journal or an interrupted rewrite's temporary left).
    Opening one is a ResultWriter process, the file read and rewritten: a resumed 15-variant sweep on 4 x H200
    spent 3-6 s on each finished variant."""
    return missing is None or missing > 0 or not closed_cleanly(path)


def _counted_done(path: Path, records: int) -> dict:
    """The summary of a variant that preflight found done (all its `records` in `path`), whose output is not
    opened."""
    logger.info("output %s: all %d records done (counted before Ray started), not opened", path, records)
    return {"output": str(path), "records": records, "ran_units": 0}


def _run_variant(config: ExperimentConfig, options: LaunchOptions, fleet: ActorFleet, started: float,
                 peers: list[ExperimentConfig] = (), ahead: list[tuple[ExperimentConfig, list[int]]] = ()) -> dict:
    """Open the variant's output with its own ResultWriter, run what is missing, close the output."""
    path = output_path(config, options.results_dir)
    writer = ResultWriter.options(name=f"ResultWriter:{path.stem.removeprefix('outputs_')}",
                                  scheduling_strategy=local_pin()).remote(str(path.resolve()), options.force,
                                                                          owner=options.owner)
    timings = VariantTimings(config.name_suffix or path.stem.removeprefix("outputs_"), started)
    try:
        opened = ray.get(writer.open.remote())  # raises OutputLockedError / CorruptOutputError / StoreWriteError
        for moved in opened["moved_aside"]:
            logger.info("--force: previous output moved aside to %s", moved)
        if opened["conflicts"]:
            logger.warning("%d records repeat the key of another record of %s with different content: kept aside "
                           "in %s (not in the output)", opened["conflicts"], path, opened["conflicts_path"])
        try:
            summary = _run(config, options, path, writer, fleet, timings, peers, ahead)
        finally:
            logger.info("output %s holds %d records", path, ray.get(writer.close.remote()))
        logger.info("timings %s", timings.line())
        return summary
    finally:
        ray.kill(writer, no_restart=True)


def _run(config: ExperimentConfig, options: LaunchOptions, path: Path, writer, fleet: ActorFleet,
         timings: VariantTimings, peers: list[ExperimentConfig] = (),
         ahead: list[tuple[ExperimentConfig, list[int]]] = ()) -> dict:
    """Run the missing units of one variant on the fleet (started here for the first variant with work)."""
    units = missing_units(config, ray.get(writer.done_keys.remote()))
    total = total_records(config)
    done = total - sum(len(u.prompt_ids) for u in units)
    logger.info("output %s: %d of %d records done, %d units to run on %d actors", path, done, total, len(units),
                options.n_actors)
    if not units:
        return {"output": str(path), "records": total, "ran_units": 0}
    if fleet.started:
        most = fleet.switch(config, writer)
    else:
        most = fleet.start(config, writer)
        # Ray's start and the load belong to the variant that started the fleet; later lines say 0
        timings.ray_start_s, timings.load_s = options.ray_start_s, fleet.load_s
    # whole variants, so that a resumed variant takes the size its group compiled for
    group = [total_units(config), *(total_units(p) for p in peers)]
    sizes = dict(zip(fleet.actors, _group_sizes(fleet, config, group_batch_sizes(len(units), most, group), most),
                     strict=True))
    fleet.warm_up(sizes, _helpers(fleet, ahead))
    timings.initial_records = ray.get(writer.count.remote())
    progress = Progress(total, done)
    try:
        ran = Scheduler(config, fleet, writer, progress, sizes, timings).run(deque(units))
    finally:
        progress.close()
    timings.warm_up_s, timings.ahead_s = fleet.warm_up_s, fleet.ahead_s
    return {"output": str(path), "records": total, "ran_units": ran}


def _group_sizes(fleet: ActorFleet, config: ExperimentConfig, sizes: list[int], most: list[int]) -> list[int]:
    """One units-per-batch for every actor and every variant of a group, for actors that share their compiled steps:
    the group's first variant's (or that of its step compiled ahead), while it fits, else the smallest of `sizes`.

    The same size everywhere means one decode step per group, compiled once (or ahead) and loaded by every actor.
    Sized anew per variant and per actor (limits 46 and 47 on two H200s), `ablation_attn` once got 35 units on one
    actor where `gauss_attn` had 34, and that actor compiled a step of its own (46.7 s, cold)."""
    if not fleet.compiles:  # no step shared between actors: each its own size, each variant its own
        return sizes
    kept = fleet.group_sizes.get(group_key(config))
    if kept is None or len(kept) != len(most) or any(size > limit for size, limit in zip(kept, most, strict=True)):
        kept = [min(sizes)] * len(sizes)
    fleet.group_sizes[group_key(config)] = kept
    return kept


def _helpers(fleet: ActorFleet, ahead: list[tuple[ExperimentConfig, list[int]]]) -> dict:
    """Which actor compiles which later group's step before warming up: the actors but the first, one group each
    (`compile_ahead`), when the actors compile their steps into a folder they share."""
    if not fleet.compiles:
        return {}
    idle = [actor for actor in fleet.actors[1:] if actor in fleet.idle]  # not one still compiling ahead
    helpers = zip(idle, ahead, strict=False)  # more groups than helpers: the rest compile in their turn
    return {actor: [(config, units, len(fleet.actors))] for actor, (config, units) in helpers}


def take_batch(queue: deque[Unit], size: int) -> list[Unit]:
    """The next unit and up to size - 1 more with the same prompts (of any level): one batch for an actor."""
    first = queue.popleft()
    chosen = [u for u in queue if u.prompt_ids == first.prompt_ids][: size - 1]
    for unit in chosen:
        queue.remove(unit)
    return [first, *chosen]


class Scheduler:
    """Keeps one batch of units in flight per idle actor of the fleet; requeues the units of a failed batch.

    A batch is one unit, or several units with the same prompts for an actor that rep-batches, sized so
    that the actors finish together (`batch_sizes`). A batch whose units raised is retried on any actor;
    one whose actor died too (the fleet restarts that actor and gives it the variant again), so a
    restart costs its units one retry. A unit that failed MAX_UNIT_FAILURES times stops the run.
    """

    def __init__(self, config: ExperimentConfig, fleet: ActorFleet, writer, progress: Progress, sizes: dict,
                 timings: VariantTimings):
        self.config, self.fleet, self.writer, self.progress = config, fleet, writer, progress
        self.sizes = sizes  # actor -> units per batch
        self.timings = timings
        self.failures: dict[tuple[float, int], int] = {}

    def run(self, queue: deque[Unit]) -> int:
        """Run every unit of `queue`; returns how many units completed."""
        completed = 0
        while queue or self.fleet.busy:  # an actor still warming up (compiling ahead) joins the next variant
            while self.fleet.idle and queue:
                actor = self.fleet.idle[-1]
                self.fleet.submit(actor, take_batch(queue, self.sizes[actor]))
                self.timings.generation_start()
            result = self.fleet.next_result(timeout=1.0)
            count = ray.get(self.writer.count.remote())
            self.progress.update(count)
            self.timings.records_seen(count)
            if result is not None:
                completed += self._settle(result, queue)
        self.timings.generation_ended = time.monotonic()
        return completed

    def _settle(self, result: BatchResult, queue: deque[Unit]) -> int:
        """How many units of a finished batch completed; a failed batch's units go back in the queue."""
        if result.outcome is Outcome.FINISHED:
            self.progress.add_tokens(sum(report.tokens for report in result.reports))
            return result.finished
        if result.outcome is Outcome.FAILED:
            self._check_writer()
        self._requeue(result.units, result.error, queue)
        return 0

    def _check_writer(self) -> None:
        """Stop the run when the writer could not save records: retrying would only generate more unsaved ones."""
        failure = ray.get(self.writer.failure.remote())
        if failure is not None:
            raise StoreWriteError(failure)

    def _requeue(self, units: list[Unit], error: Exception, queue: deque[Unit]) -> None:
        """Put each unit back with only its prompts the writer has not recorded."""
        done = ray.get(self.writer.done_keys.remote())
        missing = {(u.level, u.repeat_index): u for u in missing_units(self.config, done)}
        for unit in units:
            key = (unit.level, unit.repeat_index)
            self.failures[key] = self.failures.get(key, 0) + 1
            if self.failures[key] >= MAX_UNIT_FAILURES:
                raise RuntimeError(f"unit {unit.label} failed {MAX_UNIT_FAILURES} times; "
                                   f"last error: {error}") from error
            remaining = missing.get(key)
            logger.warning("unit %s failed (%s); requeued with %d missing prompts", unit.label, first_line(error),
                           len(remaining.prompt_ids) if remaining else 0)
            if remaining:
                queue.append(remaining)
