"""Typed launch settings: validated once, with messages that say how to fix the value."""

from pathlib import Path

import pytest

from degrader.run.options import LaunchOptions, LaunchRequest


def test_a_request_gives_the_driver_its_options():
    request = LaunchRequest(results_dir=Path("r"), gpus=2, actors_per_gpu=2, force=True, started=12.5)
    options = request.options(Path("run.log"), owner="launch pid 1")
    assert options == LaunchOptions(results_dir=Path("r"), gpus=2, actors_per_gpu=2, force=True,
                                    log_path=Path("run.log"), owner="launch pid 1", started=12.5)
    assert request.n_actors == options.n_actors == 4
    assert [options.actor_name(i) for i in range(4)] == ["ModelActor:gpu0.0", "ModelActor:gpu0.1", "ModelActor:gpu1.0",
                                                         "ModelActor:gpu1.1"]
    assert options.actor_resources() == {"num_gpus": 0.5, "num_cpus": 1}
    assert LaunchOptions(cpu_actors=3).n_actors == 3 and LaunchOptions().actor_resources() == {"num_cpus": 1}


@pytest.mark.parametrize("fields,message", [
    ({"gpus": -1}, "--gpus must be >= 0, got -1"),
    ({"actors_per_gpu": 0}, "--actors-per-gpu and --cpu-actors must be >= 1"),
    ({"cpu_actors": 0}, "--actors-per-gpu and --cpu-actors must be >= 1"),
    ({"log_level": "LOUD"}, "log level 'LOUD' is unknown: use one of DEBUG, INFO, WARNING, ERROR"),
])
def test_bad_values_are_refused_with_the_fix(fields, message):
    with pytest.raises(ValueError, match=message):
        LaunchRequest(**fields)
    with pytest.raises(ValueError, match=message):
        LaunchOptions(**fields)
