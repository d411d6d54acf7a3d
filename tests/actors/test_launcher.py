"""The launcher names a run once: its log file and its Ray namespace carry the same experiment id."""

from __future__ import annotations

import subprocess
import time

import pytest

from actors.launcher import experiment_id
from configs.experiments import get_config
from configs.sweeps import apply_variant, sweep_variants
from degrader.run.options import LaunchRequest
from tests.actors.conftest import LAUNCH, OUTPUT, SMALL_ARGS


def test_the_experiment_id_is_the_outputs_name_or_the_sweeps(tmp_path):
    request = LaunchRequest(results_dir=tmp_path / "results", logs_dir=tmp_path / "logs", gpus=0, sweep="thesis")
    assert experiment_id([get_config("dreams_it")], request) == "uni_quant_gemma-3-4b-it_2025_05_20_dreams"
    sweep = [apply_variant(get_config("dreams_it"), variant) for variant in sweep_variants("thesis")]
    assert experiment_id(sweep, request) == "sweep_thesis_gemma-3-4b-it"


@pytest.mark.slow
def test_a_real_launch_puts_its_actors_and_its_log_file_under_one_experiment_id(ray_cluster, tmp_path):
    """scripts/launch.py in a child process, joining this session's cluster (--address) so that the namespace of
    its named actors (log sink, writer, model actor) can be read while it runs; then its log file's name."""
    expected = OUTPUT.removeprefix("outputs_").removesuffix(".json")
    address = ray_cluster.get_runtime_context().gcs_address
    console = tmp_path / "console.txt"  # a file, not a pipe: nothing blocks the child while this test polls
    with open(console, "w", encoding="utf-8") as sink:
        launch = subprocess.Popen([*LAUNCH, *SMALL_ARGS, "--set", "n_rep=1", "--address", address, "--results-dir",
                                   str(tmp_path / "results"), "--logs-dir", str(tmp_path / "logs")],
                                  stdout=sink, stderr=subprocess.STDOUT, text=True)
        namespaces, deadline = set(), time.monotonic() + 600
        while launch.poll() is None and time.monotonic() < deadline:
            namespaces |= {actor["namespace"] for actor in ray_cluster.util.list_named_actors(all_namespaces=True)
                           if actor["namespace"] != "degrader-tests"}
            time.sleep(0.2)
        if launch.poll() is None:  # past the deadline
            launch.kill()
        launch.wait(timeout=60)
    output = console.read_text(encoding="utf-8")
    assert launch.returncode == 0, output
    assert namespaces == {f"degrader-{expected}"}, output
    assert [p.name.startswith(f"{expected}_") for p in (tmp_path / "logs").iterdir()] == [True]
    assert "[driver] done:" in output, output


def test_a_driver_that_does_not_import_is_one_clear_line_and_exit_code_1(tmp_path):
    """Its modules import while Ray starts: an ImportError there ends the launch with a line that says what to do,
    not a traceback, and Ray is shut down."""
    code = ("import sys, runpy; sys.modules['actors.driver'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    launch = subprocess.run([LAUNCH[0], "-c", code, LAUNCH[1], *SMALL_ARGS, "--results-dir", str(tmp_path / "r"),
                             "--logs-dir", str(tmp_path / "logs")], capture_output=True, text=True, timeout=300)
    output = launch.stdout + launch.stderr
    assert launch.returncode == 1, output
    assert "cannot import the driver's modules (ModuleNotFoundError" in output and "Traceback" not in output, output
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir())  # nothing written
