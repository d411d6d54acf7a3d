"""The process settings that make GPU records repeat across processes, checked in fresh processes (they are global).

That they make records repeat is measured on GPUs (docs/performance.md, "Records across launches: what makes them
repeat"); here: what
they set, that a user's cuBLAS setting is kept (with a warning when it is not a reproducible one), and that a
worker sets them for a CUDA device before loading anything, and leaves a CPU process as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from degrader.decoding.repeatable import CUBLAS_ENV, REPEATABLE_CUBLAS
from tests.conftest import ROOT

STATE = ("import json, os, torch; print(json.dumps([torch.are_deterministic_algorithms_enabled(), "
         "torch.is_deterministic_algorithms_warn_only_enabled(), torch.utils.deterministic.fill_uninitialized_memory, "
         f"os.environ.get({CUBLAS_ENV!r})]))")


def run_python(code: str, cublas: str | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != CUBLAS_ENV}
    if cublas is not None:
        env[CUBLAS_ENV] = cublas
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def state(result: subprocess.CompletedProcess) -> list:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_make_repeatable_turns_on_deterministic_algorithms_and_the_reproducible_cublas_workspace():
    before = state(run_python(STATE))
    after = run_python("import logging; logging.basicConfig()\nfrom degrader.decoding.repeatable import "
                       f"make_repeatable; make_repeatable()\n{STATE}")
    assert before == [False, False, True, None]
    assert state(after) == [True, True, False, REPEATABLE_CUBLAS[0]]
    assert "WARNING" not in after.stderr


def test_a_users_cublas_setting_is_kept_and_one_that_does_not_repeat_is_named():
    code = f"import logging; logging.basicConfig()\nfrom degrader.decoding.repeatable import make_repeatable\n" \
           f"make_repeatable()\n{STATE}"
    reproducible = run_python(code, cublas=":16:8")
    other = run_python(code, cublas=":1024:2")
    assert state(reproducible)[3] == ":16:8" and "WARNING" not in reproducible.stderr
    assert state(other) == [True, True, False, ":1024:2"]
    assert "CUBLAS_WORKSPACE_CONFIG=:1024:2 is not one of the cuBLAS workspaces NVIDIA documents" in other.stderr
    assert "unset it to use that" in other.stderr


def test_a_worker_sets_them_for_a_cuda_device_before_loading_and_not_for_the_cpu():
    worker = ("import torch\nfrom configs.experiments import apply_overrides, get_config\n"
              "from degrader.run.worker import ModelWorker\n"
              "config = apply_overrides(get_config('dreams_it'), ['model_name=embedded', 'max_prompts=1'])\n"
              "worker = ModelWorker(config, torch.device('{device}'), 'test')\n"
              "try:\n    worker.load()\nexcept (AssertionError, RuntimeError) as error:  # no CUDA in this torch\n"
              "    print('load failed:', type(error).__name__)\n")
    cuda = run_python(worker.format(device="cuda") + STATE)
    cpu = run_python(worker.format(device="cpu") + STATE)
    if not torch.cuda.is_available():  # CI: the CUDA load fails after the settings are made
        assert "load failed" in cuda.stdout
    assert state(cuda) == [True, True, False, REPEATABLE_CUBLAS[0]]
    assert state(cpu) == [False, False, True, None]
    assert "load failed" not in cpu.stdout
