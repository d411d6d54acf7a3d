"""Processes that share a folder of precompiled steps compile each step once: the first claims it (a lock the kernel
drops when the process ends), the others wait for its file and load it; after a holder that saved nothing, or a
wait too long, a process compiles the step itself."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from degrader.decoding.precompile import claim_step, release_claim
from tests.actors.conftest import wait_for

ROOT = Path(__file__).resolve().parents[3]

# Two of these run at once on one folder: each loads the embedded model, waits until both are ready (so that
# their first calls overlap), then calls a small precompiled step; prints whether its step was loaded.
STEP_SCRIPT = """
import json, sys, time
from pathlib import Path
import torch
from degrader.decoding.generation import SamplingParams
from degrader.decoding.precompile import PrecompiledStep
from degrader.decoding.static_decode import StaticDecoder
from degrader.models import load_model
from tests.degrader.decoding.test_precompile import plus_one, step_arguments

folder, me, other = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
model = load_model("embedded", dtype="float32", device="cpu").model
args = step_arguments(StaticDecoder(model, 2, 20, SamplingParams(max_new_tokens=8)))
(folder / f"{me}.ready").touch()
while not (folder / f"{other}.ready").exists():
    time.sleep(0.05)
step = PrecompiledStep(plus_one, "default", folder / "steps")
assert torch.equal(step(*args), args[1] + 1)
print(json.dumps({"loaded": step.loaded}))
"""

# Holds a claim on sys.argv[1] until killed, or (with a second argument) for that many seconds, then writes the
# step's file and releases the claim.
HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from degrader.decoding.precompile import claim_step, release_claim

path = Path(sys.argv[1])
claim = claim_step(path)
assert claim is not None
path.with_suffix(".held").touch()
if len(sys.argv) < 3:
    time.sleep(3600)
time.sleep(float(sys.argv[2]))
if len(sys.argv) < 4:
    path.write_bytes(b"compiled")
release_claim(claim)
"""


def child(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def holding(path: Path, *args: str) -> subprocess.Popen:
    """A real process that holds the claim on `path` (see HOLDER_SCRIPT)."""
    process = child(HOLDER_SCRIPT, str(path), *args)
    wait_for(lambda: path.with_suffix(".held").exists() or process.poll() is not None, timeout=60)
    assert process.poll() is None, process.communicate()[1][-2000:]
    return process


def test_two_processes_that_need_the_same_step_at_once_compile_it_once(tmp_path):
    first, second = child(STEP_SCRIPT, str(tmp_path), "a", "b"), child(STEP_SCRIPT, str(tmp_path), "b", "a")
    results = []
    for process in (first, second):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-4000:]
        results.append(json.loads(out.strip().splitlines()[-1])["loaded"])
    assert sorted(results) == [False, True]  # one compiled and saved it, the other waited and loaded it
    assert len(list((tmp_path / "steps").glob("*.step"))) == 1 and not list((tmp_path / "steps").glob("*.claim"))


def test_a_waiting_process_loads_the_step_its_holder_saves(tmp_path):
    path = tmp_path / "step.step"
    holder = holding(path, "1.5")
    started = time.monotonic()
    assert claim_step(path) is None  # the file came: nothing to claim, load it
    assert time.monotonic() - started > 0.5 and path.read_bytes() == b"compiled"
    assert holder.wait(timeout=60) == 0 and not path.with_suffix(".claim").exists()


def test_a_holder_that_saves_nothing_lets_the_waiting_processes_compile_at_once(tmp_path, caplog):
    path = tmp_path / "step.step"
    holder = holding(path, "1.0", "no file")  # it could not save its step: it releases the claim without a file
    with caplog.at_level(logging.INFO, logger="degrader.decoding.precompile"):
        assert claim_step(path) is None  # compiled here unclaimed, not after every other waiter in turn
    assert f"pid {holder.pid} on" in caplog.text and "but saved nothing; compiling it here" in caplog.text
    assert holder.wait(timeout=60) == 0 and not path.with_suffix(".claim").exists()


def test_the_claim_of_a_killed_process_is_free_again(tmp_path):
    path = tmp_path / "step.step"
    holder = holding(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    assert path.with_suffix(".claim").exists()  # left behind, but no longer locked
    claim = claim_step(path, wait_s=5)
    assert claim is not None and json.loads(claim.path.read_text())["pid"] == os.getpid()
    assert claim_step(path, wait_s=0) is None  # this process holds it now: another claim is refused
    release_claim(claim)
    assert not claim.path.exists()


def test_a_live_holder_is_waited_for_only_so_long(tmp_path, caplog):
    path = tmp_path / "step.step"
    holder = holding(path, "3", "no file")
    try:
        with caplog.at_level(logging.WARNING, logger="degrader.decoding.precompile"):
            assert claim_step(path, wait_s=0.5) is None  # compiled here, unclaimed
        assert "waited 0.5s for pid" in caplog.text
        assert holder.wait(timeout=60) == 0
    finally:
        holder.kill()


def test_an_unwritable_folder_compiles_unclaimed(tmp_path, caplog):
    blocked = tmp_path / "a file" / "step.step"  # its folder cannot be made
    blocked.parent.write_text("")
    with caplog.at_level(logging.WARNING, logger="degrader.decoding.precompile"):
        assert claim_step(blocked) is None
    assert "compiling it unclaimed" in caplog.text


def test_a_claim_whose_holder_cannot_be_written_still_holds(tmp_path, monkeypatch):
    from degrader.decoding import precompile

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    path = tmp_path / "step.step"
    monkeypatch.setattr(precompile.os, "pwrite", full_disk)
    claim = claim_step(path)
    assert claim is not None and claim_step(path, wait_s=0) is None  # held, though its holder is not written
    release_claim(claim)
    again = claim_step(path, wait_s=0)  # released: the lock went with it
    assert again is not None
    release_claim(again)
