"""The ActorFleet's small surface: names of its calls, batch outcomes, and clear errors on misuse (no Ray needed).

Its behaviour with real actors (restarts, dropped actors, 1 actor = N actors) is in test_run.py.
"""

import pytest

from actors.fleet import ActorFleet, BatchResult, Outcome, task_name
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
    with pytest.raises(ValueError, match="needs a batch in flight or an actor restarting"):
        fleet.next_result(timeout=0)
    with pytest.raises(ValueError, match=r"takes an idle actor \(one from fleet.idle\)"):
        fleet.submit(object(), [Unit(0.0, 0, (0,))])
