"""The ActorFleet's small surface: names of its calls, batch outcomes, clear errors on misuse (no Ray needed), and
warm-ups that let the first ready actors start while another compiles ahead (tiny actors on a real Ray cluster).

Its behaviour with ModelActors (restarts, dropped actors, 1 actor = N actors) is in test_run.py.
"""

import os
import time

import pytest

from actors.fleet import ActorFleet, BatchResult, Outcome, Variant, task_name
from degrader.run.options import LaunchOptions
from degrader.run.plan import Unit

PROMPTS = tuple(range(38))


def test_a_batch_is_named_after_its_first_unit_its_size_and_its_prompts():
    assert task_name([Unit(0.3, 2, PROMPTS)]) == "units level=0.3 rep=2 (38 prompts)"
    batch = [Unit(0.3, 2, PROMPTS), *(Unit(0.4, r, PROMPTS) for r in range(4))]
    assert task_name(batch) == "units level=0.3 rep=2 +4 (38 prompts)"


def test_only_a_finished_batch_counts_its_units():
    units = [Unit(0.5, 0, (0, 1)), Unit(0.5, 1, (0, 1))]
    assert BatchResult(units, Outcome.FINISHED).finished == 2
    assert BatchResult(units, Outcome.FAILED, error=RuntimeError("oom")).finished == 0
    assert BatchResult(units, Outcome.ACTOR_DIED, error=RuntimeError("gone")).finished == 0


def test_misuse_is_a_clear_value_error():
    fleet = ActorFleet(LaunchOptions(), "LogSink")
    assert not fleet.started and not fleet.busy and not fleet.restarting
    with pytest.raises(ValueError, match=r"call start\(\) first"):
        fleet.switch(None, None)
    with pytest.raises(ValueError, match="needs a batch or a warm-up in flight, or an actor restarting"):
        fleet.next_result(timeout=0)
    with pytest.raises(ValueError, match=r"takes an idle actor \(one from fleet.idle\)"):
        fleet.submit(object(), [Unit(0.0, 0, (0,))])


def tiny_actor(ray, ahead_s: float = 3.0, dies_ahead: bool = False):
    @ray.remote(num_cpus=0, max_restarts=1)
    class Tiny:
        """ModelActor's calls that the fleet makes, recorded; a warm-up with `ahead` takes `ahead_s` (a compile),
        or ends the process when `dies_ahead` (Ray restarts it once)."""

        def __init__(self):
            self.calls = []

        def warm_up(self, size, ahead=()):
            if ahead and dies_ahead:
                os._exit(1)
            time.sleep(ahead_s if ahead else 0.0)
            self.calls.append(("warm_up", size, [config for config, _, _ in ahead]))
            return {"seconds": 0.1, "ahead_s": ahead_s if ahead else 0.0, "warmed": True,
                    "ahead": [config for config, _, _ in ahead], "ahead_sizes": [(("dreams_it", config), 7)
                                                                          for config, _, _ in ahead]}

        def set_variant(self, config, writer):
            self.calls.append(("set_variant", config))
            return 5

        def run_units(self, units):
            self.calls.append(("run_units", len(units)))
            return []

        def pid(self):
            return os.getpid()

        def recorded(self):
            return self.calls

    return Tiny


def fleet_of(*actors) -> ActorFleet:
    fleet = ActorFleet(LaunchOptions(), "LogSink")
    fleet.actors, fleet.idle, fleet.variant = list(actors), list(actors), Variant("attn", None)
    return fleet


def drain(fleet: ActorFleet) -> None:
    while fleet.pending:
        fleet.next_result(timeout=30)


def test_actors_start_as_they_finish_their_warm_up_and_one_compiling_ahead_joins_the_next_variant(ray_cluster):
    tiny = tiny_actor(ray_cluster)
    first, helper = tiny.remote(), tiny.remote()
    fleet = fleet_of(first, helper)
    fleet.warm_up({first: 2, helper: 2}, {helper: [("mlp", [4], 2)]})
    assert not fleet.idle and len(fleet.warming) == 2
    while first not in fleet.idle:
        assert fleet.next_result(timeout=10) is None  # a warm-up is not a batch
    assert helper not in fleet.idle  # still compiling ahead: the first actor generates meanwhile
    fleet.submit(first, [Unit(0.5, 0, PROMPTS)])
    result = None
    while result is None:
        result = fleet.next_result(timeout=10)
    assert result.outcome is Outcome.FINISHED and fleet.warming  # the variant's units are done, the helper is not
    assert fleet.switch("embed", None) == [5, 5]  # not held back by the helper's compile
    assert helper in fleet.switches.values() and helper not in fleet.idle
    fleet.submit(first, [Unit(0.5, 1, PROMPTS)])
    with pytest.raises(ValueError, match="needs no batch in flight"):
        fleet.warm_up({first: 2})
    drain(fleet)
    assert sorted(fleet.idle, key=fleet.actors.index) == [first, helper]  # each once
    assert ray_cluster.get(helper.recorded.remote()) == [("warm_up", 2, ["mlp"]), ("set_variant", "embed")]
    assert [report["ahead"] for report in fleet.warm_ups] == [[]]  # the helper's report was the last variant's
    assert fleet.group_sizes == {("dreams_it", "mlp"): [7, 7]}  # the size its step was compiled for
    fleet.kill()


def switched_while_the_helper_compiles_ahead(tiny) -> tuple[ActorFleet, object, object]:
    """Two tiny actors warmed up, the second compiling ahead; the fleet switched as soon as the first is idle."""
    first, helper = tiny.remote(), tiny.remote()
    fleet = fleet_of(first, helper)
    fleet.warm_up({first: 2, helper: 2}, {helper: [("mlp", [4], 2)]})
    while first not in fleet.idle:
        fleet.next_result(timeout=10)
    fleet.switch("embed", None)
    return fleet, first, helper


def test_a_helper_whose_warm_up_and_switch_both_answered_is_idle_once(ray_cluster):
    """Its warm-up and its switch can be taken in either order (ray.wait keeps none): idle once, in every trial."""
    tiny = tiny_actor(ray_cluster, ahead_s=0.5)
    for _ in range(4):
        fleet, first, helper = switched_while_the_helper_compiles_ahead(tiny)
        time.sleep(1.5)  # both of the helper's calls answer before the fleet looks
        drain(fleet)
        assert len(fleet.idle) == 2 and set(fleet.idle) == {first, helper}
        fleet.kill()


def test_a_helper_that_dies_compiling_ahead_after_a_switch_is_restarted_once(ray_cluster):
    fleet, first, helper = switched_while_the_helper_compiles_ahead(tiny_actor(ray_cluster, dies_ahead=True))
    drain(fleet)  # its warm-up and its queued switch both fail: one restart, then the current variant
    assert len(fleet.idle) == 2 and set(fleet.idle) == {first, helper} and len(fleet.actors) == 2
    assert ray_cluster.get(helper.recorded.remote()) == [("set_variant", "embed")]  # the restarted process's calls
    fleet.kill()


def test_a_second_switch_does_not_wait_for_a_helper_still_compiling_ahead(ray_cluster):
    fleet, first, helper = switched_while_the_helper_compiles_ahead(tiny_actor(ray_cluster))
    assert fleet.switch("quant", None) == [5, 5]  # the variant before ran nothing: the next one at once
    assert list(fleet.switches.values()) == [helper, helper] and first in fleet.idle
    drain(fleet)
    assert fleet.idle.count(helper) == 1 and len(fleet.idle) == 2
    assert ray_cluster.get(helper.recorded.remote())[-2:] == [("set_variant", "embed"), ("set_variant", "quant")]
    fleet.kill()
