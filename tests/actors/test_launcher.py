"""The launcher names a run once: its log file and its Ray namespace carry the same experiment id."""

from __future__ import annotations

import logging

import pytest

import actors.launcher as launcher
from configs.experiments import get_config
from configs.sweeps import apply_variant, sweep_variants
from degrader.run.options import LaunchRequest


@pytest.fixture
def keep_root_handlers():
    """Remove the handlers `launch` adds to the root logger (its console and log file) after the test."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.mark.parametrize(("sweep", "expected"), [(None, "uni_quant_gemma-3-4b-it_2025_05_20_dreams"),
                                                  ("thesis", "sweep_thesis_gemma-3-4b-it")])
def test_the_log_file_and_the_ray_namespace_share_one_experiment_id(tmp_path, monkeypatch, keep_root_handlers,
                                                                     sweep, expected):
    variants = sweep_variants(sweep) if sweep else [None]
    configs = [apply_variant(get_config("dreams_it"), v) if v else get_config("dreams_it") for v in variants]
    request = LaunchRequest(results_dir=tmp_path / "results", logs_dir=tmp_path / "logs", gpus=0, sweep=sweep)
    experiment_id, computed, namespaces = launcher.experiment_id, [], []

    def counted(*args):
        computed.append(experiment_id(*args))
        return computed[-1]

    def no_cluster(address, namespace):  # stops the launch where Ray would start, as an unreachable cluster does
        namespaces.append(namespace)
        raise ConnectionError("no cluster in this test")

    monkeypatch.setattr(launcher, "experiment_id", counted)
    monkeypatch.setattr(launcher, "start_ray", no_cluster)
    monkeypatch.setattr(launcher.ray, "shutdown", lambda: None)  # leave any session cluster of other tests alone
    assert launcher.launch(configs, request) == 1
    assert computed == [expected] and namespaces == [f"degrader-{expected}"]  # computed once, used for both
    assert [p.name.startswith(f"{expected}_") for p in (tmp_path / "logs").iterdir()] == [True]
