"""ActorFleet: the run's ModelActors as idle / busy / restarting sets, like `ray.util.ActorPool`.

The fleet starts and loads the actors, switches them to a variant, warms them up (an actor is idle once its
own warm-up is done, so the first ready ones start generating), hands a batch of units to an idle actor and
takes results back as they finish (`ray.wait`). An actor that died is pinged until Ray has
restarted it (its __init__ ran again), then given the current variant again before it is idle; one
that Ray cannot restart is dropped. Every call's result is checked, none is fire-and-forget.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.model_actor import ModelActor
from configs.experiments import ExperimentConfig
from degrader.run.options import LaunchOptions
from degrader.run.plan import Unit
from degrader.run.worker import UnitReport

logger = logging.getLogger(__name__)


def local_pin() -> NodeAffinitySchedulingStrategy:
    """Schedule on the driver's node (the results and logs folders are there)."""
    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def first_line(error: BaseException) -> str:
    """An error's type and the start of its first line, for a log line."""
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"


def task_name(units: list[Unit]) -> str:
    """The name of a run_units call in the dashboard's task list: 'units level=0.3 rep=2 +4 (38 prompts)'."""
    more = f" +{len(units) - 1}" if len(units) > 1 else ""
    return f"units {units[0].label}{more} ({len(units[0].prompt_ids)} prompts)"


class Outcome(enum.Enum):
    """How a batch of units ended."""

    FINISHED = "finished"  # every unit ran; the actor is idle again
    FAILED = "failed"  # the units raised (e.g. out of memory); the actor is idle again, the units need a retry
    ACTOR_DIED = "actor died"  # the actor died mid-batch; it is restarting, the units need a retry


@dataclass(frozen=True)
class BatchResult:
    """One finished batch: its units, how it ended, and the reports or the error."""

    units: list[Unit]
    outcome: Outcome
    reports: list[UnitReport] = field(default_factory=list)
    error: Exception | None = None

    @property
    def finished(self) -> int:
        """How many units finished."""
        return len(self.units) if self.outcome is Outcome.FINISHED else 0


@dataclass
class Variant:
    """What a (restarted) actor must be switched to: the config and the writer of its output."""

    config: ExperimentConfig
    writer: object


class ActorFleet:
    """The ModelActors of a run: start, switch variant, submit batches, take results as they finish, kill."""

    def __init__(self, options: LaunchOptions, sink_name: str):
        self.options, self.sink_name = options, sink_name
        self.actors: list = []
        self.idle: list = []
        self.busy: dict = {}  # run_units ref -> (actor, units)
        self.pings: dict = {}  # pid ref -> an actor that died, until Ray has restarted it
        self.switches: dict = {}  # set_variant ref -> a restarted actor, until it holds the current variant
        self.warming: dict = {}  # warm_up ref -> (actor, units per batch, variant), until its warm-up is done
        self.warm_ups: list[dict] = []  # what the finished warm-ups of the current variant report (ModelActor)
        self.compiles = False  # whether the actors compile decode steps into a shared folder (load's description)
        self.group_sizes: dict = {}  # (task, parameter group) -> units per batch of each actor (driver._group_sizes)
        self.variant: Variant | None = None
        self.loads: list = []  # load refs of actors launched and not yet started (launch, then start)
        self.launched: ExperimentConfig | None = None  # the variant the actors were launched with
        self.began = 0.0  # when the actors were launched
        self.load_s = 0.0  # actor start + model load, of the variant that started the fleet

    @property
    def started(self) -> bool:
        """Whether the actors run and hold their model (started by the first variant with work)."""
        return bool(self.actors) and not self.loads

    def launch(self, config: ExperimentConfig) -> None:
        """Start the ModelActors and their model load for `config` without waiting: they load while the driver
        opens the first output; `start` then waits for them."""
        if self.actors:
            raise ValueError("the fleet is already launched: call start() (first variant) or switch()")
        self.began, self.launched = time.monotonic(), config
        self.actors = [ModelActor.options(name=self.options.actor_name(i), scheduling_strategy="SPREAD",
                                          **self.options.actor_resources())
                       .remote(config, self.options.actor_name(i), self.sink_name, self.options.log_level)
                       for i in range(self.options.n_actors)]
        self.loads = [actor.load.remote() for actor in self.actors]

    def start(self, config: ExperimentConfig, writer) -> list[int]:
        """Wait for the actors' load (launched here unless `launch` did it) and give them the output's writer
        (and `config`, if they were launched with another variant); returns the most units each one may decode
        per batch."""
        if not self.actors:
            self.launch(config)
        elif not self.loads:
            raise ValueError("the fleet is already started: call switch() for another variant")
        descriptions, self.loads = ray.get(self.loads), []
        self.load_s = time.monotonic() - self.began
        for description in descriptions:
            logger.info("%s ready (pid %s): %s, %s, units per batch: %d", description["actor"], description["pid"],
                        description["architecture"], description["dtype"], description["units_per_batch"])
        self.variant, self.idle = Variant(config, writer), list(self.actors)
        # one steps folder (one compile-cache key: the same GPU model): the actors load each other's steps
        folders = {description.get("steps") for description in descriptions}
        self.compiles = all(description.get("compiles") for description in descriptions) and len(folders) == 1
        if config is self.launched:
            return ray.get([actor.set_writer.remote(writer) for actor in self.actors])
        return ray.get([actor.set_variant.remote(config, writer) for actor in self.actors])

    def switch(self, config: ExperimentConfig, writer) -> list[int]:
        """Switch every actor to another variant of the loaded model; returns their units per batch.

        An actor still warming up (compiling a later group's step ahead, past the end of the last variant's units)
        is switched once that is done, like a restarted actor, without holding the others back; its units per
        batch are taken to be the smallest of the others'."""
        if not self.actors or self.busy:
            raise ValueError("switch() needs a started fleet with no batch in flight: call start() first, "
                             "and take every result of the last variant")
        warming = {actor for actor, _, _ in self.warming.values()}
        # an actor that died on the last variant's last batch (not one still switching behind its warm-up)
        while self.pings or any(actor not in warming for actor in self.switches.values()):
            self.next_result(timeout=None)
            warming = {actor for actor, _, _ in self.warming.values()}
        self.variant = Variant(config, writer)
        refs = {actor: actor.set_variant.remote(config, writer) for actor in self.actors}
        ready = [actor for actor in self.actors if actor not in warming] or list(self.actors)
        most = dict(zip(ready, ray.get([refs[actor] for actor in ready]), strict=True))
        for actor in self.actors:
            if actor not in most:
                self.switches[refs[actor]] = actor  # idle once switched (_settle_restart)
        return [most.get(actor, min(most.values())) for actor in self.actors]

    def warm_up(self, sizes: dict, ahead: dict | None = None) -> None:
        """Every idle actor sizes its batches for `sizes[actor]` units and compiles its decode step, after the steps
        of later groups for `ahead[actor]` (ModelActor.warm_up). Returns at once: an actor is idle when its warm-up
        is done (`next_result`), and `warm_ups` collects what each reports. An actor not idle (restarting, or still
        switching) compiles on its first batch.

        A warm-up only saves time: one that fails is logged, and the actor compiles on its first batch instead.
        An actor that died meanwhile is pinged and given the variant again before its first batch.
        """
        if self.busy:
            raise ValueError("warm_up() needs no batch in flight: take every result of the last variant first")
        self.warm_ups = []
        for actor, size in sizes.items():
            if actor not in self.idle:
                continue
            self.idle.remove(actor)
            self.warming[actor.warm_up.remote(size, (ahead or {}).get(actor, []))] = (actor, size, self.variant)

    @property
    def warm_up_s(self) -> float:
        """The slowest finished warm-up of the current variant, not counting the steps compiled ahead."""
        return max((report["seconds"] for report in self.warm_ups), default=0.0)

    @property
    def ahead_s(self) -> float:
        """The longest time an actor spent compiling the steps of later groups before warming up this variant."""
        return max((report["ahead_s"] for report in self.warm_ups), default=0.0)

    def submit(self, actor, units: list[Unit]) -> None:
        """Hand a batch of units to an idle actor; the call is named after them in the dashboard."""
        if actor not in self.idle:
            raise ValueError("submit() takes an idle actor (one from fleet.idle)")
        self.idle.remove(actor)
        self.busy[actor.run_units.options(name=task_name(units)).remote(units)] = (actor, units)

    @property
    def restarting(self) -> dict:
        """The calls in flight to actors that died: pings, then their switch to the current variant."""
        return {**self.pings, **self.switches}

    @property
    def pending(self) -> bool:
        """Whether a batch, a warm-up or a restart is in flight."""
        return bool(self.busy or self.warming or self.restarting)

    def next_result(self, timeout: float | None) -> BatchResult | None:
        """The next batch to finish within `timeout` seconds (None if none did); warm-ups, pings and switches are
        handled here."""
        if not self.pending:
            raise ValueError("next_result() needs a batch or a warm-up in flight, or an actor restarting")
        ready, _ = ray.wait([*self.busy, *self.warming, *self.pings, *self.switches], num_returns=1, timeout=timeout)
        if not ready:
            return None
        if ready[0] in self.warming:
            self._settle_warm_up(ready[0])
            return None
        if ready[0] in self.restarting:
            self._settle_restart(ready[0])
            return None
        return self._settle_batch(ready[0])

    def _settle_batch(self, ref) -> BatchResult:
        actor, units = self.busy.pop(ref)
        try:
            reports = ray.get(ref)
        except ray.exceptions.RayTaskError as error:  # the units raised (e.g. out of memory at batch 1)
            self._make_idle(actor)
            return BatchResult(units, Outcome.FAILED, error=error)
        except ray.exceptions.RayActorError as error:
            self._restart(actor)
            return BatchResult(units, Outcome.ACTOR_DIED, error=error)
        self._make_idle(actor)
        return BatchResult(units, Outcome.FINISHED, reports=reports)

    def _settle_warm_up(self, ref) -> None:
        """A warm-up answered: the actor is idle (restarting, if it died; still switching, if the fleet moved on to
        another variant meanwhile); a failed warm-up is only logged."""
        actor, size, variant = self.warming.pop(ref)
        try:
            report = ray.get(ref)
        except ray.exceptions.RayError as error:
            logger.warning("warm-up failed (%s); the actor compiles on its first batch", first_line(error))
            if isinstance(error, ray.exceptions.RayActorError):
                return self._restart(actor)
            return self._make_idle(actor)
        ahead = f" (after compiling ahead {', '.join(report['ahead'])}: {report['ahead_s']:.1f}s)" if report[
            "ahead"] else ""
        if report["warmed"]:
            logger.info("warm-up for %d units per batch: %.1fs%s", size, report["seconds"], ahead)
        elif ahead:  # the actor logs a skipped warm-up itself
            logger.info("warm-up for %d units per batch skipped%s", size, ahead)
        for key, units in report["ahead_sizes"]:  # the group's batches are sized as its step was compiled
            self.group_sizes.setdefault(tuple(key), [units] * len(self.actors))
        if variant is self.variant:
            self.warm_ups.append(report)
        return self._make_idle(actor)

    def _make_idle(self, actor) -> None:
        """Put `actor` in the idle list, once, when none of its calls is in flight (a batch, a warm-up, a ping, a
        switch): an actor switched while it warmed up answers twice, in either order."""
        in_flight = [entry[0] for entry in (*self.busy.values(), *self.warming.values())]
        if actor in self.idle or actor in in_flight or actor in (*self.pings.values(), *self.switches.values()) \
                or actor not in self.actors:  # dropped meanwhile
            return
        self.idle.append(actor)

    def _restart(self, actor) -> None:
        """Ping `actor` until Ray has restarted it (once: each of its calls in flight fails when it dies)."""
        while actor in self.idle:
            self.idle.remove(actor)
        if actor in self.pings.values() or actor not in self.actors:
            return
        self.pings[actor.pid.remote()] = actor

    def _settle_restart(self, ref) -> None:
        """A ping answered: give the actor the current variant; its switch answered: the actor is idle again."""
        is_ping = ref in self.pings
        actor = (self.pings if is_ping else self.switches).pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayTaskError as error:  # its reload or switch raised: it cannot run this variant
            return self._drop(actor, error)
        except ray.exceptions.ActorDiedError as error:  # Ray could not restart it (e.g. its node is gone)
            return self._drop(actor, error)
        except ray.exceptions.RayActorError:  # still restarting, or died again
            return self._restart(actor)
        if not is_ping:
            self._make_idle(actor)
            return None
        # a restarted actor starts from its constructor's arguments: give it this variant again
        self.switches[actor.set_variant.remote(self.variant.config, self.variant.writer)] = actor
        return None

    def _drop(self, actor, error: Exception) -> None:
        """Stop and forget an actor that cannot run the variant; RuntimeError when none is left.

        Killed without restart, so that its GPU and its name are free even while Ray would still restart it. Its
        other pings, switches and warm-ups are forgotten (each would fail again)."""
        if actor not in self.actors:
            return
        ray.kill(actor, no_restart=True)
        self.actors.remove(actor)
        while actor in self.idle:
            self.idle.remove(actor)
        for calls in (self.pings, self.switches):
            for ref in [ref for ref, other in calls.items() if other == actor]:
                del calls[ref]
        for ref in [ref for ref, entry in self.warming.items() if entry[0] == actor]:
            del self.warming[ref]
        logger.error("an actor is gone for good (%s); %d actors left", error, len(self.actors))
        if not self.actors:
            raise RuntimeError("every ModelActor died and none could be restarted") from error

    def kill(self) -> None:
        """Stop every actor (no restart), so that GPUs and actor names are free again."""
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors, self.idle, self.busy, self.pings, self.switches, self.loads = [], [], {}, {}, {}, []
        self.warming = {}
