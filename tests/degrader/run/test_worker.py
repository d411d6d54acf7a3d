"""ModelWorker without Ray: the out-of-memory retry and sweep variants, on the real embedded model."""

import gc
import weakref

import pytest
import torch
from torch._dynamo.eval_frame import _debug_get_cache_entry_list

import degrader.run.weights as weights_module
import degrader.run.worker as worker_module
from degrader.decoding.static_decode import StaticDecoder
from degrader.run.plan import Unit
from degrader.run.worker import ModelWorker
from tests.actors.conftest import small_config, stable


@pytest.fixture(scope="module")
def worker():
    loaded = ModelWorker(small_config("max_prompts=6", "max_batch_size=6"), torch.device("cpu"), "test")
    loaded.load()
    return loaded


def test_out_of_memory_shrinks_the_batch_and_keeps_every_prompt(worker, monkeypatch):
    real = worker_module.generate
    calls = []

    def generate(loaded, prompts, *args, **kwargs):  # a GPU that holds at most 2 sequences
        calls.append(len(prompts))
        if len(prompts) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(loaded, prompts, *args, **kwargs)

    monkeypatch.setattr(worker_module, "generate", generate)
    unit = Unit(0.0, 0, tuple(range(6)))
    records = []
    worker.generate_units([unit], records.extend)
    assert [r["prompt_id"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert calls == [6, 3, 1, 1, 1, 1, 1, 1]  # 6 -> 3 -> 1 per batch; every prompt generated once
    assert worker.prompt_batch_size <= 2 and all(r["batch_size_effective"] <= 2 for r in records)


def test_a_variant_switch_restores_the_old_group_before_snapshotting_the_new(worker):
    reference = {n: p.detach().clone() for n, p in worker.loaded.model.named_parameters()}
    worker.weights.baseline.degrade("mult_gauss", 1.0, 42)  # leave the attn_only group damaged
    # a group that overlaps the damaged one: snapshotting before the restore would keep the damage
    worker.prepare(worker.config.replace(param_group_name="attn_v[0:6]", name_suffix="other"))
    worker.weights.baseline.restore()
    assert all(torch.equal(p, reference[n]) for n, p in worker.loaded.model.named_parameters())
    assert len(worker.weights.baseline.targets) == 6
    with pytest.raises(ValueError, match="same"):
        worker.prepare(worker.config.replace(dtype="bfloat16"))


@pytest.mark.parametrize("oom_above", [None, 2])
def test_rep_batched_units_give_the_per_unit_records(monkeypatch, oom_above):
    real = worker_module.generate

    def generate(loaded, prompts, *args, **kwargs):  # a GPU that holds at most `oom_above` prompts per repetition
        if oom_above and len(prompts) > oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(loaded, prompts, *args, **kwargs)

    monkeypatch.setattr(worker_module, "generate", generate)
    records = {}
    # a per-unit batch first (it leaves the live weights degraded), then two levels in one rep-batch
    units = [Unit(0.5, 0, (0, 1, 2, 3, 4)), Unit(0.5, 1, (0, 1, 2, 3, 4)), Unit(0.0, 2, (0, 1, 2, 3, 4))]
    for reps in (1, 3):
        config = small_config("max_prompts=5", "n_rep=3", "max_new_tokens=8", f"units_per_batch={reps}")
        worker = ModelWorker(config, torch.device("cpu"), "test")
        worker.load()
        # stacks come with the first batch that needs them
        assert (worker.max_units, worker.units_per_batch) == (reps, 1)
        emitted = []
        reports = worker.run_units(units[:1], emitted.extend) + worker.run_units(units[1:], emitted.extend)
        assert worker.units_per_batch == min(reps, 2)
        assert [(r.unit.repeat_index, r.records) for r in reports] == [(0, 5), (1, 5), (2, 5)]
        records[reps] = sorted((stable(r) for r in emitted), key=lambda r: (r["repeat_index"], r["prompt_id"]))
    assert records[1] == records[3]
    assert [(r["repeat_index"], r["prompt_id"]) for r in records[3]] == [(r, p) for r in range(3) for p in range(1, 6)]
    assert [r["level_value"] for r in records[3][::5]] == [0.5, 0.5, 0.0]


def test_rep_batched_picture_description_on_a_multimodal_model_gives_the_per_unit_records():
    outputs = {}
    for reps in (1, 2):
        config = small_config("model_name=random:tiny-gemma3", "max_prompts=2", f"units_per_batch={reps}").replace(
            prompt_group="cookie_theft", image_enabled=True)
        worker = ModelWorker(config, torch.device("cpu"), "test")
        worker.load()
        emitted = []
        worker.run_units([Unit(0.5, r, (0, 1)) for r in range(2)], emitted.extend)
        assert {r["reps_in_batch"] for r in emitted} == {reps} and {r["image_enabled"] for r in emitted} == {True}
        outputs[reps] = [stable(r) for r in emitted]
    assert outputs[1] == outputs[2] and len({r["output"] for r in outputs[1]}) > 1


def test_perplexity_and_out_of_memory_at_one_prompt_with_rep_batching(monkeypatch):
    real = worker_module.generate

    def generate(loaded, prompts, *args, units=1, **kwargs):  # a GPU that holds at most 2 units
        if units > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(loaded, prompts, *args, units=units, **kwargs)

    records = {}
    for reps in (1, 4):
        config = small_config("max_prompts=2", "n_rep=4", "compute_perplexity=true", f"units_per_batch={reps}")
        worker = ModelWorker(config, torch.device("cpu"), "test")
        worker.load()
        if reps > 1:
            monkeypatch.setattr(worker_module, "generate", generate)
        emitted = []
        worker.run_units([Unit(0.5, r, (0, 1)) for r in range(4)], emitted.extend)
        records[reps] = {(r["repeat_index"], r["prompt_id"]): r for r in emitted}  # retried prompts overwrite
    assert worker.units_per_batch == worker.max_units == 2  # 4 did not fit even at one prompt: halved
    assert sorted(records[4]) == sorted(records[1]) and {r["reps_in_batch"] for r in records[4].values()} == {2}
    for key, record in records[1].items():
        assert stable({**records[4][key], "perplexity": 0}) == stable({**record, "perplexity": 0})
        assert records[4][key]["perplexity"] == pytest.approx(record["perplexity"], rel=1e-5)
    assert len({r["perplexity"] for r in records[1].values()}) == 4  # one per repetition


def test_out_of_memory_while_copying_the_group_halves_the_units_and_keeps_the_prompts_per_batch(monkeypatch):
    real = weights_module.UnitStacks

    def stacks(model, targets, units):  # a GPU that holds the copies of at most 2 units
        if units > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, targets, units)

    monkeypatch.setattr(weights_module, "UnitStacks", stacks)
    worker = ModelWorker(small_config("max_prompts=2", "n_rep=4", "max_new_tokens=4", "units_per_batch=4"),
                         torch.device("cpu"), "test")
    worker.load()
    emitted = []
    reports = worker.run_units([Unit(0.5, r, (0, 1)) for r in range(4)], emitted.extend)
    assert (worker.max_units, worker.units_per_batch, worker.prompt_batch_size) == (2, 2, 2)  # fewer prompts won't help
    assert [(r.unit.repeat_index, r.records) for r in reports] == [(r, 2) for r in range(4)]
    assert len(emitted) == 8 and {r["reps_in_batch"] for r in emitted} == {2}


def ordered(records: list[dict]) -> list[dict]:
    """Records without their volatile fields, by repetition and prompt."""
    return sorted((stable(r) for r in records), key=lambda r: (r["repeat_index"], r["prompt_id"]))


def records_of_a_fresh_worker(config, units: list[Unit]) -> list[dict]:
    """What a worker that ran only `config` (eager, on the CPU) records for `units`, ordered."""
    fresh = ModelWorker(config, torch.device("cpu"), "fresh", static=False)
    fresh.load()
    records = []
    fresh.run_units(units, records.extend)
    return ordered(records)


def test_the_warm_up_compiles_the_step_that_every_later_batch_replays():
    """The static path on the CPU (compiled, no CUDA graphs): the warm-up compiles for the batch the driver
    planned, later batches only replay, and the records equal the eager path's."""
    from torch._dynamo.utils import counters

    config = small_config("max_prompts=3", "n_rep=2", "max_new_tokens=6", "units_per_batch=2")
    units = [Unit(0.5, r, (0, 1, 2)) for r in range(2)]
    records = {}
    for static in (False, True):
        worker = ModelWorker(config, torch.device("cpu"), "test", static=static)
        worker.load()
        graphs = counters["stats"]["unique_graphs"]
        assert worker.warm_up(2)  # no decoder has decoded yet: the warm-up batch runs
        assert worker.units_per_batch == 2 and [key.rows for key in worker.decoders] == ([3] if static else [])
        assert (counters["stats"]["unique_graphs"] > graphs) == static
        emitted = []
        with torch._dynamo.config.patch(error_on_recompile=True):
            graphs = counters["stats"]["unique_graphs"]
            worker.run_units(units, emitted.extend)
            assert counters["stats"]["unique_graphs"] == graphs  # nothing left to compile after the warm-up
        records[static] = sorted((stable(r) for r in emitted), key=lambda r: (r["repeat_index"], r["prompt_id"]))
    assert len(records[True]) == 6 and records[True] == records[False]


def test_a_variant_of_the_same_group_keeps_the_stacks_and_compiles_nothing():
    """A sweep's next variant on the group the worker holds: the unit stacks and the compiled decoder stay, the
    warm-up and the units compile nothing, and the records equal those of a worker that ran only that variant."""
    from torch._dynamo.utils import counters

    first = small_config("max_prompts=3", "n_rep=2", "max_new_tokens=6", "units_per_batch=2")
    second = first.replace(degradation_method="ablation", min_deg=0.0, max_deg=0.4, name_suffix="ablation")
    units = [Unit(0.4, r, (0, 1, 2)) for r in range(2)]
    entries = lambda: len(_debug_get_cache_entry_list(StaticDecoder._step.__code__))  # noqa: E731
    before = entries()  # earlier tests' entries may still be on the step's code
    worker = ModelWorker(first, torch.device("cpu"), "test", static=True)
    worker.load()
    assert worker.warm_up(2)  # a warm-up batch: the first variant compiles
    worker.run_units([Unit(0.5, r, (0, 1, 2)) for r in range(2)], lambda records: None)
    generation, decoders = worker.weights.generation, list(worker.decoders)
    worker.prepare(second)
    emitted = []
    with torch._dynamo.config.patch(error_on_recompile=True):
        graphs = counters["stats"]["unique_graphs"]
        assert not worker.warm_up(2)  # the first variant's decoder serves: no warm-up batch, no prefill
        worker.run_units(units, emitted.extend)
        assert counters["stats"]["unique_graphs"] == graphs  # the first variant's decoder served the second
    assert worker.weights.generation == generation and list(worker.decoders) == decoders
    assert len(emitted) == 6 and ordered(emitted) == records_of_a_fresh_worker(second, units)
    assert entries() > before  # the same group kept its compiled decoder, and torch.compile its entry
    caches = [weakref.ref(worker.decoders.decoders[key].cache.layers[0].keys) for key in worker.decoders]
    gc.disable()  # only reference counting may free the evicted caches: the next group is sized right after
    try:
        worker.prepare(second.replace(param_group_name="mlp_only", name_suffix="mlp"))  # another group: new stacks
        assert caches and [cache() for cache in caches] == [None] * len(caches)
    finally:
        gc.enable()
    assert worker.weights.stacks is None and worker.weights.generation > generation and len(worker.decoders) == 0
    assert entries() == 0  # nothing compiled left: torch.compile let go of the evicted step (kept it before)


def test_a_group_compiled_ahead_is_loaded_when_it_runs_and_leaves_the_records_unchanged(tmp_path, caplog):
    """warm_up_ahead: the worker compiles and saves a later group's step for the batch the driver will plan, comes
    back to its own variant (the records of a worker that never left it), and loads that step when the group runs."""
    config = small_config("max_prompts=3", "n_rep=2", "max_new_tokens=6", "units_per_batch=2")
    later = config.replace(param_group_name="mlp_only", name_suffix="mlp")
    units = [Unit(0.5, r, (0, 1, 2)) for r in range(2)]
    worker = ModelWorker(config, torch.device("cpu"), "test", static=True)
    worker.load()
    assert not worker.compiles and not worker.warm_up_ahead(later, [4], 2)  # no shared folder: nothing ahead
    worker.keep_steps_in(tmp_path)
    assert worker.compiles and worker.warm_up_ahead(later, [4], 2) == 2  # 4 units on 2 actors: 2 per batch
    steps = sorted((tmp_path / "steps").glob("*.step"))
    assert len(steps) == 1 and worker.config is config and not list(worker.decoders)
    assert worker.warm_up(2)
    emitted = []
    worker.run_units(units, emitted.extend)
    assert len(emitted) == 6 and ordered(emitted) == records_of_a_fresh_worker(config, units)
    worker.prepare(later)
    with caplog.at_level("INFO", logger="degrader.decoding.precompile"):
        assert worker.warm_up(2)
    assert next(iter(worker.decoders.decoders.values())).step_loaded
    assert f"decode step loaded from {steps[0].name}" in caplog.text  # the file compiled ahead, not another
    assert len(list((tmp_path / "steps").glob("*.step"))) == 2  # and the variant's own


def test_a_failed_compile_ahead_only_warns_but_a_failed_switch_back_raises(worker, monkeypatch, tmp_path, caplog):
    """The worker must not decode for its variant in a state it could not restore (the actor then restarts)."""
    monkeypatch.setattr(worker, "steps", tmp_path / "steps")  # as keep_steps_in, undone after the test
    monkeypatch.setattr(worker, "static", True)
    current = worker.config
    later = current.replace(param_group_name="mlp_only" if current.param_group_name != "mlp_only" else "attn_only",
                            name_suffix="later")
    targets = [target.name for target in worker.weights.baseline.targets]
    monkeypatch.setattr(worker, "warm_up", lambda units: (_ for _ in ()).throw(RuntimeError("no memory left")))
    with caplog.at_level("WARNING", logger="degrader.run.worker"):
        assert worker.warm_up_ahead(later, [4], 2) is None
    assert "could not be compiled ahead (RuntimeError: no memory left)" in caplog.text
    assert worker.config is current and [target.name for target in worker.weights.baseline.targets] == targets
    prepare = worker.prepare

    def fails_switching_back(config):
        if config is current:
            raise RuntimeError("out of memory while restoring")
        prepare(config)

    monkeypatch.setattr(worker, "prepare", fails_switching_back)
    with pytest.raises(RuntimeError, match="restoring"):
        worker.warm_up_ahead(later, [4], 2)
    monkeypatch.setattr(worker, "prepare", prepare)
    worker.prepare(current)
