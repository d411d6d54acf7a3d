"""BatchPlan: memory sizing and the one out-of-memory policy, on the CPU with the real embedded model."""

import torch

from degrader.run.batch_plan import BatchPlan, Halving, PromptSet, VramMonitor
from tests.actors.conftest import small_config

CPU = torch.device("cpu")


def planned(prompts: int, max_units: int) -> BatchPlan:
    """A plan on the CPU holding `prompts` prompts and `max_units` units per batch."""
    plan = BatchPlan(CPU)
    plan.max_prompts = plan.prompts = prompts
    plan.max_units = max_units
    return plan


def test_out_of_memory_halves_the_prompts_down_to_one_then_the_units_then_gives_up():
    plan, seen = planned(prompts=6, max_units=4), []
    while (halving := plan.halving(in_prompts=True, units=plan.max_units)) is not None:
        plan.halve(halving, plan.max_units)
        seen.append((halving, plan.prompts, plan.max_units))
    assert seen == [(Halving.PROMPTS, 3, 4), (Halving.PROMPTS, 1, 4), (Halving.UNITS, 1, 2), (Halving.UNITS, 1, 1)]


def test_out_of_memory_outside_the_prompt_batches_halves_the_units_at_once():
    plan = planned(prompts=6, max_units=4)
    assert plan.halving(in_prompts=False, units=4) is Halving.UNITS  # the copies or the perplexity pass
    plan.halve(Halving.UNITS, 3)  # the units that failed, not the most allowed, are halved
    assert (plan.prompts, plan.max_units) == (6, 1)
    assert plan.halving(in_prompts=False, units=1) is None


def test_sizing_on_the_cpu_follows_the_config(embedded):
    config = small_config("max_prompts=5", "max_batch_size=4", "n_rep=3")
    plan = BatchPlan(CPU)
    plan.size_prompts(embedded.model, config, prompt_length=20)
    assert (plan.max_prompts, plan.prompts) == (4, 4)
    assert plan.after_batch() is None and plan.prompts == 4  # no GPU to watch: nothing grows
    for requested, unsupported, expected in [(1, None, 1), (0, None, 1), (3, None, 3), (8, None, 6),
                                             (3, "a 4-bit tensor", 1)]:
        plan.size_units(embedded.model, requested, 6, 40, 1000, unsupported)
        assert plan.max_units == expected, (requested, unsupported)


def test_a_prompt_set_measures_the_longest_prompt(embedded):
    config = small_config("max_prompts=3")
    prompts = PromptSet.of(embedded, config)
    longest = max(len(embedded.tokenizer(p.text).input_ids) for p in config.prompts)
    assert prompts.image is None and prompts.length == longest
    assert VramMonitor(CPU).percent() is None



class Readings:
    """A GPU memory monitor that reads the given percents in turn (the CPU has none to read)."""

    def __init__(self, *percents: float):
        self.percents = list(percents)

    def percent(self) -> float:
        return self.percents.pop(0)


def test_prompts_per_batch_grow_back_under_40_percent_up_to_the_first_size(caplog):
    plan = planned(prompts=8, max_units=1)
    plan.halve(Halving.PROMPTS, 1)
    plan.halve(Halving.PROMPTS, 1)
    plan.monitor = Readings(95.0, 50.0, 30.0, 30.0, 30.0)
    assert [(plan.after_batch(), plan.prompts) for _ in range(5)] == [(95.0, 2), (50.0, 2), (30.0, 4), (30.0, 8),
                                                                     (30.0, 8)]
    assert "GPU memory at 95.0%" in caplog.text


def test_a_variant_of_the_same_group_measures_what_fits_when_the_last_one_did_not(embedded):
    """A variant that asked for one unit per batch measured nothing: the next variant of the same group, asking
    for as many as fit, measures the free memory instead of reusing a count never taken (benchmark.py's
    per-unit path, then its rep-batched path, on one worker). A GPU plan whose free memory reads 40 GiB (this
    machine has no GPU to read)."""
    plan = BatchPlan(torch.device("cuda"))
    plan._free = lambda: 40 * 2**30
    plan.prompts = 4
    plan.size_units(embedded.model, 1, 6, 64, 10**6, None)
    assert (plan.max_units, plan.fits) == (1, None)
    plan.size_units(embedded.model, 0, 6, 64, 10**6, None, same_group=True)
    assert plan.max_units == 6 and plan.fits >= 6
    # a variant of the group that was measured keeps the count (its stacks hold memory it uses again)
    plan._free = lambda: 0
    plan.size_units(embedded.model, 0, 6, 64, 10**6, None, same_group=True)
    assert plan.max_units == 6
    plan.size_units(embedded.model, 0, 6, 64, 10**6, None, same_group=False)
    assert plan.max_units == 1
