"""scripts/launch.py as a user runs it: real processes, real signals, a real two-node cluster."""

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from degrader.run.keys import record_key
from tests.actors.conftest import LAUNCH, OUTPUT, records_of

RUN = ["--config", "dreams_it", "--gpus", "0", "--model", "embedded", "--max-prompts", "4", "--set", "n_rep=4",
       "--set", "max_new_tokens=16", "--set", "degradation_method=mult_gauss", "--set", "min_deg=0",
       "--set", "max_deg=0.6", "--set", "deg_steps=4"]


def launch(tmp_path: Path, *args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    command = [*LAUNCH, *args, "--results-dir", str(tmp_path / "results"), "--logs-dir", str(tmp_path / "logs")]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, **popen)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


@pytest.mark.parametrize("args,message", [
    (["--config", "dream"], "unknown config 'dream'; available: cookie_theft_it, dreams_it, iq_it"),
    (["--config", "dreams_it", "--set", "n_rep=ten"], "--set n_rep=ten: expected int"),
    (["--config", "cookie_theft_it", "--set", "image_filename=real_cookie_theft.png"], "does not exist"),
    (["--config", "dreams_it", "--set", "degradation_method=ablation", "--set", "min_deg=0"], r"in [0, 1]"),
    (["--config", "dreams_it", "--model", "random:llama-70b"], "unknown random architecture"),
    (["--config", "dreams_it", "--gpus", "0", "--set", "load_in_4bit=true"], "load_in_4bit needs a GPU"),
    (["--config", "cookie_theft_it", "--gpus", "0", "--model", "embedded"], "has no vision tower"),
])
def test_bad_input_is_a_clear_error_before_anything_starts(tmp_path, args, message):
    code, output = finish(launch(tmp_path, *args), timeout=120)
    assert code == 2 and message in output
    assert "Ray dashboard" not in output and not (tmp_path / "results").exists()


def test_dry_run_prints_the_plan_and_loads_nothing(tmp_path):
    code, output = finish(launch(tmp_path, "--config", "cookie_theft_it", "--model", "random:gemma-3-4b-it",
                                 "--dry-run"), timeout=120)
    assert code == 0
    assert "1200 in all, 1200 missing in 60 units" in output
    assert "outputs_uni_quant_random-gemma-3-4b-it_2025_06_24_cookies.json" in output
    assert "memory / actor" in output and "weights 8.01" in output
    # cookie_theft_it lesions attn_only: 34 value projections of 2560 x 1024 in bf16 per repetition; each of a
    # unit's 20 rows also sends the picture through the vision tower (4096 patches) in its prefill
    assert "each unit in a batch adds 0.17 GiB of copies" in output and "at most 16 per batch on 80 GiB" in output


@pytest.mark.slow
def test_a_healthy_run_prints_no_ray_error_and_logs_its_timings(tmp_path):
    """No `E ... core_worker.cc ... max_restarts > 0` line (ray-project/ray#53727: no actor handle is a restartable
    actor's constructor argument), and the timings lines a time-to-result report parses."""
    code, output = finish(launch(tmp_path, *RUN[:6], "--set", "n_rep=1", "--set", "deg_steps=2", "--set",
                                 "max_new_tokens=4", "--max-prompts", "1"))
    assert code == 0, output
    assert "core_worker" not in output and "max_restarts" not in output, output
    log = next((tmp_path / "logs").glob("*.log")).read_text()
    assert "core_worker" not in log and "max_restarts" not in log
    timings = [json.loads(line.split(" timings ", 1)[1]) for line in log.splitlines() if " timings {" in line]
    variant, total = timings
    assert variant["variant"] == "2025_05_20_dreams" and variant["ray_start_s"] > 0 and variant["load_s"] > 0
    assert variant["ray_start_s"] < variant["first_record_s"] < total["total_s"] and set(total) == {"total_s"}


def lock_is_free(path: Path) -> bool:
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def wait_for(condition, timeout: float = 180.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def journal_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_sigkill_of_the_driver_then_the_same_command_finishes_the_run(tmp_path):
    output = tmp_path / "results" / OUTPUT
    journal = output.with_name(output.name + ".journal")
    lock = output.with_name(output.name + ".lock")
    first = launch(tmp_path, *RUN)
    wait_for(lambda: lock.exists() and lock.read_text().startswith("launch pid"),
             what="first launch to lock its output")

    code, text = finish(launch(tmp_path, *RUN), timeout=180)  # a concurrent launch of the same output
    assert code == 1 and "another launch is writing" in text and f"launch pid {first.pid} on " in text
    wait_for(lambda: journal_lines(journal) >= 20, what="first flush")
    assert first.poll() is None, "the first launch must still be running when it is killed"

    flushed = journal.read_text().splitlines()
    first.send_signal(signal.SIGKILL)
    first.communicate()
    wait_for(lambda: lock_is_free(lock), what="writer of the killed run to exit")

    code, text = finish(launch(tmp_path, *RUN))
    assert code == 0, text
    records = records_of(output)
    assert len(records) == 64 == len({record_key(r) for r in records})
    kept = {r["timestamp"] for r in records}
    assert all(json.loads(line)["timestamp"] in kept for line in flushed[:20])


@pytest.mark.slow
def test_ctrl_c_keeps_every_received_record_and_the_same_command_finishes(tmp_path):
    output = tmp_path / "results" / OUTPUT
    journal = output.with_name(output.name + ".journal")
    secret = {"HF_TOKEN": "hf_secret_never_written_anywhere"}
    first = launch(tmp_path, *RUN, env=secret, start_new_session=True,
                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: journal_lines(journal) >= 20, what="first flush")
    os.killpg(first.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole process group
    code, text = finish(first, timeout=60)
    assert code == 130 and "run the same command to resume" in text
    assert "hf_secret_never_written" not in text  # nor on the console of the run that had it
    interrupted = records_of(output)  # compacted on the way out: the journal is gone
    assert len(interrupted) >= 20 and not journal.exists()
    code, text = finish(launch(tmp_path, *RUN))
    assert code == 0, text
    records = records_of(output)
    assert len(records) == 64 == len({record_key(r) for r in records})
    assert interrupted == records[: len(interrupted)]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(b"hf_secret_never_written" in p.read_bytes() for p in written)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_cluster(temp_dir: Path, port: int) -> None:
    """Kill the processes of this cluster only (`ray stop` would also stop other tests' clusters)."""
    marks = (str(temp_dir), f":{port}", f"gcs_server_port={port}")
    ours = [p for p in psutil.process_iter(["cmdline"])
            if any(mark in part for part in p.info["cmdline"] or [] for mark in marks)]
    for process in ours + [child for p in ours for child in _children(p)]:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_address_runs_on_an_existing_two_node_cluster(tmp_path):
    port, temp_dir = free_port(), Path("/tmp") / f"ray-two-node-{os.getpid()}"
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus=1", "--num-gpus=0", "--object-store-memory=200000000", "--disable-usage-stats"]
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}",
                        "--include-dashboard=false", *common], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([ray_cli, "start", f"--address=127.0.0.1:{port}", *common], env=env, check=True,
                       capture_output=True, timeout=120)
        code, text = finish(launch(tmp_path, *RUN[:8], "--set", "n_rep=1", "--set", "max_new_tokens=4",
                                   "--cpu-actors", "2", "--address", f"127.0.0.1:{port}", env=env))
    finally:
        stop_cluster(temp_dir, port)
    assert code == 0, text
    records = records_of(tmp_path / "results" / "outputs_uni_quant_embedded-gemma-3-270m_2025_05_20_dreams.json")
    assert len(records) == 6 * 4  # uni_quant: the control level 0 and 5 quantised levels
    assert len({r["ray_node_id"] for r in records}) == 2
    assert {r["actor"] for r in records} == {"ModelActor:cpu0", "ModelActor:cpu1"}
