import json
import logging
import os
import signal
import threading
from pathlib import Path

import pytest

from actors.driver import run_experiment
from configs.experiments import get_config
from degrader.run.compare import compare_outputs
from degrader.run.keys import record_key
from degrader.run.options import LaunchOptions
from degrader.run.plan import output_path
from degrader.run.store import CorruptOutputError, journal_path
from tests.actors.conftest import SMALL, records_of, small_config, stable, wait_for

FIELDS = {"timestamp", "model_name", "degradation_method", "level_value", "std_dev", "param_group_name", "repeat_index",
          "seed", "prompt_group", "prompt_id", "prompt_text", "output", "duration", "tokens", "tokens_in",
          "batch_size_effective", "vram_usage_percent", "temperature", "do_sample", "load_4bit", "sampling_seed",
          "settings_hash", "model_description", "actor", "ray_node_id"}


def run(tmp_path, config, **options):
    options = LaunchOptions(results_dir=tmp_path, log_path=tmp_path / "run.log", **options)
    summary = run_experiment(config, options)
    return records_of(summary["output"])


def test_small_run_writes_every_record_with_its_fields(ray_cluster, tmp_path):
    config = small_config()
    records = run(tmp_path, config)
    assert len(records) == 12 == len({record_key(r) for r in records})
    assert FIELDS <= set(records[0])
    assert {(r["level_value"], r["repeat_index"]) for r in records} == {(0.0, 0), (0.0, 1), (0.5, 0), (0.5, 1)}
    assert {r["seed"] for r in records} == {42, 43} and all(r["std_dev"] == r["level_value"] for r in records)
    assert all(r["model_name"] == "embedded:gemma-3-270m" and 0 < r["tokens"] <= 6 for r in records)
    log = (tmp_path / "run.log").read_text()
    assert "[ModelActor:cpu0 CPU] unit level=0.5 rep=1 done" in log
    assert not any(r["output"].strip() and r["output"].strip() in log for r in records)  # no generated text
    assert run(tmp_path, config) == records  # a finished run has nothing left to do


def test_one_and_two_actors_give_identical_records(ray_cluster, tmp_path):
    one = run(tmp_path / "one", small_config(), cpu_actors=1)
    two = run(tmp_path / "two", small_config(), cpu_actors=2)
    assert {r["actor"] for r in two} == {"ModelActor:cpu0", "ModelActor:cpu1"}
    by_key = {record_key(r): stable(r) for r in one}
    assert {record_key(r): stable(r) for r in two} == by_key
    [comparison] = compare_outputs(tmp_path / "one", tmp_path / "two")  # what scripts/compare_runs.py reports
    assert comparison.identical and comparison.matched == 12 and comparison.shapes_differ == 0


def test_rep_batched_actors_write_the_records_of_the_per_unit_path(ray_cluster, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="actors.driver")
    caplog.set_level(logging.INFO, logger="actors.fleet")  # the fleet warms the actors up
    per_unit = run(tmp_path / "one", small_config("deg_steps=3"))
    # 3 levels x 2 repetitions in 2 batches of 3: each batch holds units of two levels
    batched = run(tmp_path / "three", small_config("deg_steps=3", "units_per_batch=3"), cpu_actors=2)
    assert {r["reps_in_batch"] for r in per_unit} == {1} and {r["reps_in_batch"] for r in batched} == {3}
    assert {record_key(r): stable(r) for r in batched} == {record_key(r): stable(r) for r in per_unit}
    [comparison] = compare_outputs(tmp_path / "one", tmp_path / "three")
    assert comparison.identical and comparison.matched == 18 == comparison.shapes_differ  # other shapes, same texts
    assert "units per batch: 3" in (tmp_path / "three" / "run.log").read_text()
    assert caplog.text.count("warm-up for 3 units per batch") == 2  # both actors, before their first unit


@pytest.mark.parametrize("reps", [1, 3])
def test_killed_model_actor_is_replaced_and_the_run_completes(ray_cluster, tmp_path, caplog, reps):
    from ray.util.state import list_actors

    config = small_config("max_prompts=4", "n_rep=3", "max_new_tokens=10", "deg_steps=3", f"units_per_batch={reps}")
    result = {}
    thread = threading.Thread(target=lambda: result.update(records=run(tmp_path, config)))
    thread.start()
    journal = output_path(config, tmp_path).with_suffix(".json.journal")
    writer = "ResultWriter:" + output_path(config, tmp_path).stem.removeprefix("outputs_")
    address = ray_cluster.get_runtime_context().gcs_address  # this test's cluster, not any other on the machine
    actors = wait_for(lambda: _alive(lambda **kw: list_actors(address=address, **kw),
                                      {"ModelActor:cpu0", writer, "LogSink"}))
    wait_for(lambda: journal.exists() and journal.stat().st_size > 0)
    os.kill(actors["ModelActor:cpu0"], signal.SIGKILL)
    thread.join(timeout=240)
    records = result["records"]
    assert len(records) == 36 == len({record_key(r) for r in records})
    # the killed batch's units (one, or the three repetitions of a level) each went back in the queue once
    assert caplog.text.count("ActorUnavailableError") == reps and "requeued" in caplog.text
    assert (tmp_path / "run.log").read_text().count("loaded embedded:gemma-3-270m") == 2  # reloaded once


def _alive(list_actors, names: set[str]) -> dict[str, int] | None:
    found = {a.name: a.pid for a in list_actors(filters=[("state", "=", "ALIVE")]) if a.name in names}
    return found if set(found) == names and all(found.values()) else None



def test_corrupt_output_is_refused_and_left_byte_identical(ray_cluster, tmp_path):
    config = small_config()
    path = output_path(config, tmp_path)
    path.write_bytes(b'[{"prompt_text": "cut by a cra')
    with pytest.raises(CorruptOutputError, match="left untouched"):
        run(tmp_path, config)
    assert path.read_bytes() == b'[{"prompt_text": "cut by a cra'


def test_a_sweep_writes_one_resumable_file_per_variant_from_one_model_load(ray_cluster, tmp_path):
    from actors.driver import run_sweep
    from configs.experiments import apply_overrides
    from configs.sweeps import apply_variant

    base = small_config()
    variants = [apply_overrides(apply_variant(base, v), ["deg_steps=2", "max_deg=0.5", "min_deg=0"])
                for v in ("gauss_attn", "ablation_attn")]
    other_task = apply_overrides(get_config("iq_it"), [*SMALL, "name_suffix=iq_sample"])
    variants.append(other_task)  # a second task: other prompts, the same loaded model
    options = LaunchOptions(results_dir=tmp_path, log_path=tmp_path / "run.log")
    summaries = run_sweep(variants, options)
    paths = [s["output"] for s in summaries]
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "outputs_mult_gauss_embedded-gemma-3-270m_2025_05_20_dreams_gauss_attn.json",
        "outputs_ablation_embedded-gemma-3-270m_2025_05_20_dreams_ablation_attn.json",
        "outputs_mult_gauss_embedded-gemma-3-270m_iq_sample.json"]
    for path, method, task in zip(paths, ("mult_gauss", "ablation", "mult_gauss"), ("dreams", "dreams", "iq"),
                                  strict=True):
        records = records_of(path)
        assert len(records) == 12 and {(r["degradation_method"], r["prompt_group"])
                                       for r in records} == {(method, task)}
    log = (tmp_path / "run.log").read_text()
    assert log.count("loaded embedded:gemma-3-270m") == 1
    assert "variant 2025_05_20_dreams_ablation_attn: ablation on attn_only" in log
    assert [s["ran_units"] for s in run_sweep(variants, options)] == [0, 0, 0]


def test_actors_launched_before_the_first_output_opens_serve_the_next_variant_with_work(ray_cluster, tmp_path,
                                                                                      caplog):
    """With preflight's counts the actors start loading before the first output opens. Here the first variant
    turns out done when its output opens (its records came meanwhile): the next variant takes the launched
    actors (switched to it), and writes every record of its own. An output counted complete is not opened,
    unless its writer did not close it cleanly (a journal or a temporary left)."""
    from actors.driver import run_sweep
    from configs.experiments import apply_overrides
    from configs.sweeps import apply_variant

    variants = [apply_overrides(apply_variant(small_config(), v), ["deg_steps=2", "max_deg=0.5", "min_deg=0"])
                for v in ("gauss_attn", "ablation_attn")]
    options = LaunchOptions(results_dir=tmp_path, log_path=tmp_path / "run.log")
    assert run_sweep(variants[:1], options, missing=[12])[0]["ran_units"] == 4  # launched, then started with it
    summaries = run_sweep(variants, options, missing=[12, 12])  # a stale count: the first launches the actors
    assert [s["ran_units"] for s in summaries] == [0, 4]
    records = records_of(summaries[1]["output"])
    assert len(records) == 12 and {r["degradation_method"] for r in records} == {"ablation"}
    log = (tmp_path / "run.log").read_text()
    assert log.count("loaded embedded:gemma-3-270m") == 2  # one load per sweep
    # the second sweep loaded its actors for the first variant (done), then switched them to the second
    assert log.count("variant 2025_05_20_dreams_gauss_attn: mult_gauss on attn_only") == 2
    assert log.count("variant 2025_05_20_dreams_ablation_attn: ablation on attn_only") == 1
    # preflight counts both done. The first output has a journal left (as after a crash past its last flush): it
    # is opened and compacted. The second is not opened at all: no writer, the file not rewritten.
    first, second = (Path(s["output"]) for s in summaries)
    journal_path(first).write_text(json.dumps(records_of(first)[0]) + "\n")
    untouched = (second.stat().st_ino, second.stat().st_mtime_ns)
    caplog.set_level(logging.INFO, logger="actors.driver")
    caplog.clear()
    assert [s["ran_units"] for s in run_sweep(variants, options, missing=[0, 0])] == [0, 0]
    assert not journal_path(first).exists() and (second.stat().st_ino, second.stat().st_mtime_ns) == untouched
    assert f"output {second}: all 12 records done (counted before Ray started), not opened" in caplog.text
    assert f"output {first}: all 12" not in caplog.text and f"output {first}: 12 of 12 records done" in caplog.text
    # an interrupted rewrite's temporary beside the second: it is opened after all, and the temporary removed
    temporary = second.with_name(f".{second.name}.999.tmp")
    temporary.write_text("[")
    caplog.clear()
    assert [s["ran_units"] for s in run_sweep(variants, options, missing=[0, 0])] == [0, 0]
    assert not temporary.exists() and f"output {second}: 12 of 12 records done" in caplog.text


def test_the_dashboard_names_what_each_actor_does_and_the_log_has_timings(ray_cluster, tmp_path, caplog):
    """Ray reads an actor's Repr once, at its start: the task list shows each run_units call by its units."""
    from ray.util.state import list_actors, list_tasks

    caplog.set_level(logging.INFO, logger="actors.driver")
    address = ray_cluster.get_runtime_context().gcs_address
    run(tmp_path, small_config("max_prompts=2", "max_deg=0.3", "units_per_batch=2"))
    expected = {"units level=0.0 rep=0 +1 (2 prompts)", "units level=0.3 rep=0 +1 (2 prompts)"}

    def named() -> set[str]:
        return {task.name for name in expected
                for task in list_tasks(address=address, filters=[("name", "=", name)])} >= expected

    wait_for(named, timeout=60)  # task events reach the dashboard about once a second
    reprs = {a.repr_name for a in list_actors(address=address, detail=True, filters=[("name", "=", "ModelActor:cpu0")])}
    assert any(r.startswith("ModelActor:cpu0 CPU: embedded (auto), variant 2025_05_20_dreams: mult_gauss on ")
               for r in reprs), reprs
    lines = [json.loads(line.split("timings ", 1)[1]) for line in caplog.messages if line.startswith("timings ")]
    assert [line["variant"] for line in lines] == ["2025_05_20_dreams"]
    timings = lines[0]
    assert set(timings) == {"variant", "ray_start_s", "load_s", "warm_up_s", "ahead_s", "first_record_s",
                            "generation_s", "variant_s"}
    assert timings["load_s"] > 0 and 0 < timings["generation_s"] <= timings["variant_s"]
    assert timings["first_record_s"] > 0
