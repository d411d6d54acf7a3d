"""Precompiled decode steps: a step compiled and saved by one process is loaded by the next without tracing and
decodes the same records; the fingerprint that names its file changes with what the trace reads and with nothing
else; files that do not load or cannot be written only warn."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from degrader.decoding.edits import prepare_for_decoding
from degrader.decoding.generation import SamplingParams
from degrader.decoding.precompile import PrecompiledStep, load_step, step_fingerprint
from degrader.decoding.static_decode import StaticDecoder
from degrader.run.plan import Unit
from degrader.run.worker import ModelWorker
from tests.actors.conftest import small_config, stable

ROOT = Path(__file__).resolve().parents[3]
UNITS = [Unit(0.5, r, (0, 1, 2)) for r in range(2)]

# A child process: the worker as an actor runs it (compiled static decoding, the keyed cache folder and its
# steps), one warm-up and one batch of two units, then evicts the decoder, then warms up another group (a step
# compiled after a first one has been traced); prints whether each step was loaded, the step files, the records,
# and whether the first decoder and its KV cache were freed at once.
WORKER_SCRIPT = """
import gc, json, sys, weakref
from pathlib import Path
import torch
from degrader.decoding.compile_cache import use_compile_cache
from degrader.run.plan import Unit
from degrader.run.worker import ModelWorker
from tests.actors.conftest import small_config, stable

folder = Path(sys.argv[1])
worker = ModelWorker(small_config("units_per_batch=2"), torch.device("cpu"), "child", static=True)
worker.load()
use_compile_cache(folder)
worker.keep_steps_in(folder)
worker.warm_up(2)
records = []
worker.run_units([Unit(0.5, r, (0, 1, 2)) for r in range(2)], records.extend)
decoder = next(iter(worker.decoders.decoders.values()))
loaded = decoder.step_loaded
held = [weakref.ref(decoder), weakref.ref(decoder.cache.layers[0].keys)]
del decoder
gc.disable()  # an evicted decoder and its KV cache must go by reference counting alone
worker.decoders.clear()
freed = [ref() is None for ref in held]
gc.enable()
worker.prepare(worker.config.replace(param_group_name="mlp_only"))  # another group: another step
worker.warm_up(2)
loaded = [loaded, next(iter(worker.decoders.decoders.values())).step_loaded]
print(json.dumps({"loaded": loaded, "files": sorted(p.name for p in (folder / "steps").iterdir()),
                  "records": [stable(r) for r in records], "freed": freed}))
"""


def run_worker_in_child(folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.run([sys.executable, "-c", WORKER_SCRIPT, str(folder)], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
    assert child.returncode == 0, child.stderr[-4000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def test_a_saved_step_loads_in_the_next_process_and_decodes_the_records_of_eager_decoding(tmp_path):
    first = run_worker_in_child(tmp_path)  # traces, compiles, saves
    second = run_worker_in_child(tmp_path)  # loads: no tracing
    assert first["loaded"] == [False, False] and len(first["files"]) == 2
    assert all(name.endswith(".step") for name in first["files"])
    # the same fingerprints in another process, the second group's too (traced after the first group's step
    # in the first process, loaded without any trace in the second)
    assert second["loaded"] == [True, True] and second["files"] == first["files"]
    assert first["freed"] == second["freed"] == [True, True]  # compiled or loaded, no cycle keeps the KV cache
    eager = ModelWorker(small_config("units_per_batch=2"), torch.device("cpu"), "eager", static=True,
                        compile_mode=None)
    eager.load()
    records = []
    eager.run_units(UNITS, records.extend)
    assert len(records) == 6
    assert second["records"] == first["records"] == [stable(r) for r in records]


def step_arguments(decoder: StaticDecoder) -> tuple:
    """Arguments of the shapes StaticDecoder._loop passes its step (the decoder first)."""
    rows = decoder.batch_size * decoder.units
    mask = torch.ones(rows, decoder.prompt_length + decoder.params.max_new_tokens, dtype=torch.long)
    token = torch.zeros(rows, 1, dtype=torch.long)
    return decoder, token, token.clone(), torch.zeros(1, dtype=torch.long), mask, torch.zeros(rows, dtype=torch.long), \
        torch.tensor(1)


def fingerprint(model, batch_size=4, prompt_length=20, params=SamplingParams(max_new_tokens=8)) -> str:
    decoder = StaticDecoder(model, batch_size, prompt_length, params)
    return step_fingerprint(step_arguments(decoder), "reduce-overhead")


def test_the_fingerprint_changes_with_what_the_trace_reads_and_comes_back_when_it_is_undone(embedded):
    model = embedded.model
    base = fingerprint(model)
    assert fingerprint(model) == base  # another decoder, the same settings: the same step
    params = SamplingParams(max_new_tokens=8)
    others = [fingerprint(model, batch_size=5), fingerprint(model, prompt_length=40),
              fingerprint(model, params=replace(params, do_sample=True, temperature=0.7)),
              fingerprint(model, params=replace(params, max_new_tokens=16)),
              step_fingerprint(step_arguments(StaticDecoder(model, 4, 20, params)), "max-autotune")]
    assert len({base, *others}) == 1 + len(others)
    attention = model.model.layers[0].self_attn
    attention.scaling *= 2  # a float the trace bakes into the graph
    try:
        assert fingerprint(model) != base
    finally:
        attention.scaling /= 2
    edits = prepare_for_decoding(model, None, static=True)  # grouped attention, fused projections (hooks)
    try:
        edited = fingerprint(model)
        with edits.fusion.paused():  # a flag read inside the hooks
            paused = fingerprint(model)
    finally:
        edits.undo()
    assert len({base, edited, paused}) == 3
    assert fingerprint(model) == base


def test_the_fingerprint_reads_settings_flags_and_aliasing_but_not_dynamos_own_marks(embedded):
    model = embedded.model
    args = step_arguments(StaticDecoder(model, 4, 20, SamplingParams(max_new_tokens=8)))
    base = step_fingerprint(args, "reduce-overhead")
    aliased = step_fingerprint((*args[:2], args[1], *args[3:]), "reduce-overhead")  # the same tensor twice
    with torch.no_grad():
        without_grad = step_fingerprint(args, "reduce-overhead")
    weight = model.lm_head.weight
    weight.requires_grad_(not weight.requires_grad)
    try:
        flipped = step_fingerprint(args, "reduce-overhead")
    finally:
        weight.requires_grad_(not weight.requires_grad)
    # make_repeatable's settings (a GPU worker's) change what inductor compiles: a step saved without them is
    # not loaded with them, and back
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        deterministic = step_fingerprint(args, "reduce-overhead")
        torch.utils.deterministic.fill_uninitialized_memory = not fill
        without_fill = step_fingerprint(args, "reduce-overhead")
    finally:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = fill
    with torch._inductor.config.patch(deterministic=True):
        inductor_deterministic = step_fingerprint(args, "reduce-overhead")
    assert len({base, aliased, without_grad, flipped, deterministic, without_fill, inductor_deterministic}) == 7
    assert step_fingerprint(args, "reduce-overhead") == base
    # dynamo marks every parameter it traces: a process that compiled a step must name the next ones as a
    # process that loaded it does
    parameters = list(model.parameters())
    marks = [getattr(parameter, "_dynamo_static_input_type", None) for parameter in parameters]
    try:
        for parameter in parameters:
            torch._dynamo.mark_static_address(parameter)
        assert step_fingerprint(args, "reduce-overhead") == base
    finally:  # as the session's earlier tests left them
        for parameter, mark in zip(parameters, marks, strict=True):
            if mark is None:
                del parameter._dynamo_static_input_type
            else:
                parameter._dynamo_static_input_type = mark


def test_out_of_memory_is_raised_for_the_worker_to_halve_its_batch(embedded, tmp_path, monkeypatch):
    from degrader.decoding import precompile

    args = step_arguments(StaticDecoder(embedded.model, 2, 20, SamplingParams(max_new_tokens=8)))

    def out_of_memory(*_):
        raise torch.OutOfMemoryError("no room")

    monkeypatch.setattr(PrecompiledStep, "_precompile", out_of_memory)  # while compiling
    with pytest.raises(torch.OutOfMemoryError):
        PrecompiledStep(plus_one, "default", tmp_path)(*args)
    (tmp_path / f"{step_fingerprint(args, 'default')}.step").write_bytes(b"")
    monkeypatch.setattr(precompile, "load_step", lambda *_: out_of_memory)  # a loaded step's first call
    step = PrecompiledStep(plus_one, "default", tmp_path)
    with pytest.raises(torch.OutOfMemoryError):
        step(*args)
    assert step.loaded


def test_a_step_is_precompiled_only_with_a_folder_and_a_cache_that_never_slides(embedded, tmp_path):
    params = SamplingParams(max_new_tokens=8)
    assert isinstance(StaticDecoder(embedded.model, 2, 20, params, steps=tmp_path)._step_impl, PrecompiledStep)
    assert not isinstance(StaticDecoder(embedded.model, 2, 20, params)._step_impl, PrecompiledStep)
    assert StaticDecoder(embedded.model, 2, 20, params, compile=False, steps=tmp_path)._step_impl is \
        StaticDecoder._step
    # past the sliding window (512 tokens) the step recompiles at every step: compiled as before, nothing saved
    long = StaticDecoder(embedded.model, 2, 600, params, steps=tmp_path)
    assert not isinstance(long._step_impl, PrecompiledStep)


def test_a_file_that_does_not_load_or_cannot_be_written_only_warns(embedded, tmp_path, caplog):
    broken = tmp_path / "broken.step"
    broken.write_bytes(b"not a compiled step")
    blocked = tmp_path / "a file"
    blocked.write_text("")
    args = step_arguments(StaticDecoder(embedded.model, 2, 20, SamplingParams(max_new_tokens=8)))
    step = PrecompiledStep(plus_one, "default", blocked / "steps")  # its folder cannot be made: a file is in the way
    with caplog.at_level(logging.WARNING, logger="degrader.decoding.precompile"):
        assert load_step(broken, "reduce-overhead") is None
        assert torch.equal(step(*args), args[1] + 1)  # compiled, used, not saved
    assert "could not load the precompiled decode step" in caplog.text
    assert "could not save the precompiled decode step" in caplog.text
    assert broken.read_bytes() == b"not a compiled step" and blocked.read_text() == ""


def plus_one(decoder, token, *rest):
    """A step small enough to compile in seconds (the fingerprint still reads the real decoder)."""
    return token + 1


def plus_one_with_a_graph_break(decoder, token, *rest):
    torch._dynamo.graph_break()
    return token + 1


def test_a_small_step_is_saved_once_and_loaded_by_the_next_decoder(embedded, tmp_path):
    args = step_arguments(StaticDecoder(embedded.model, 2, 20, SamplingParams(max_new_tokens=8)))
    first = PrecompiledStep(plus_one, "default", tmp_path)
    assert torch.equal(first(*args), args[1] + 1) and not first.loaded
    files = list(tmp_path.glob("*.step"))
    assert [f.name for f in files] == [f"{step_fingerprint(args, 'default')}.step"]
    second = PrecompiledStep(plus_one, "default", tmp_path)
    assert torch.equal(second(*args), args[1] + 1) and second.loaded
    assert list(tmp_path.glob("*.step")) == files and not list(tmp_path.glob(".*"))  # no temporary left


def test_a_step_that_cannot_be_precompiled_compiles_as_before_unsaved(embedded, tmp_path, caplog):
    args = step_arguments(StaticDecoder(embedded.model, 2, 20, SamplingParams(max_new_tokens=8)))
    step = PrecompiledStep(plus_one_with_a_graph_break, "default", tmp_path)
    with caplog.at_level(logging.WARNING, logger="degrader.decoding.precompile"):
        assert torch.equal(step(*args), args[1] + 1)
    assert "could not be precompiled" in caplog.text and not list(tmp_path.iterdir())


def test_a_loaded_step_that_fails_on_its_first_call_is_compiled_again_and_replaced(embedded, tmp_path, caplog,
                                                                                   monkeypatch):
    from degrader.decoding import precompile

    args = step_arguments(StaticDecoder(embedded.model, 2, 20, SamplingParams(max_new_tokens=8)))
    path = tmp_path / f"{step_fingerprint(args, 'default')}.step"
    path.write_bytes(b"a step from elsewhere")

    def broken(*_):
        raise RuntimeError("does not run here")

    monkeypatch.setattr(precompile, "load_step", lambda *_: broken)  # a file that loads but does not run
    step = PrecompiledStep(plus_one, "default", tmp_path)
    with caplog.at_level(logging.WARNING, logger="degrader.decoding.precompile"):
        assert torch.equal(step(*args), args[1] + 1)
    assert "failed on its first call" in caplog.text and not step.loaded
    assert path.read_bytes() != b"a step from elsewhere"  # replaced by the step compiled now
    assert torch.equal(step(*args), args[1] + 1)
