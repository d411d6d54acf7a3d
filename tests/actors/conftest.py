"""A real local Ray cluster for the actor tests, and small experiment configs and launches on the embedded model."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from configs.experiments import apply_overrides, get_config
from tests.conftest import ROOT

LAUNCH = [sys.executable, str(ROOT / "scripts" / "launch.py")]  # scripts/launch.py as a user runs it
# the launcher's arguments of a tiny CPU run (2 prompts, 4 new tokens, 2 levels), and the file it writes
SMALL_ARGS = ["--config", "dreams_it", "--gpus", "0", "--model", "embedded", "--max-prompts", "2",
              "--set", "max_new_tokens=4", "--set", "degradation_method=mult_gauss", "--set", "min_deg=0",
              "--set", "max_deg=0.5", "--set", "deg_steps=2"]
OUTPUT = "outputs_mult_gauss_embedded-gemma-3-270m_2025_05_20_dreams.json"

SMALL = ["model_name=embedded", "max_prompts=3", "n_rep=2", "max_new_tokens=6", "degradation_method=mult_gauss",
         "min_deg=0", "max_deg=0.5", "deg_steps=2"]
VOLATILE = ("timestamp", "duration", "actor", "vram_usage_percent", "ray_node_id", "host", "batch_size_effective",
            "reps_in_batch")


@pytest.fixture(scope="session")
def ray_cluster():
    """ray.init on this machine (2 CPUs, dashboard on for the state API), shut down after the tests."""
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=True, namespace="degrader-tests", logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def small_config(*extra: str):
    """dreams_it on the embedded model: 3 prompts x 2 levels x 2 repetitions, 6 new tokens."""
    return apply_overrides(get_config("dreams_it"), [*SMALL, *extra])


def records_of(path: Path) -> list[dict]:
    """The records in an output file."""
    return json.loads(Path(path).read_text())


def stable(record: dict) -> dict:
    """A record without the fields that legitimately differ between runs (times, actor, memory)."""
    return {k: v for k, v in record.items() if k not in VOLATILE}


def wait_for(condition, timeout: float = 300.0):
    """condition()'s first truthy value, polled every 0.2 s; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError("condition not met")
