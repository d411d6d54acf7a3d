"""scripts/check_repeatability.py in real processes on the embedded model, compared by scripts/compare_runs.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

SMALL = ["--model", "embedded", "--device", "cpu", "--set", "max_prompts=2", "--set", "n_rep=2",
         "--set", "max_new_tokens=5", "--set", "degradation_method=mult_gauss", "--set", "min_deg=0",
         "--set", "max_deg=0.5", "--set", "deg_steps=2"]


def script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def test_two_processes_repeat_the_records_and_the_per_unit_path_gives_the_same_texts(tmp_path):
    runs = {"first": ["units_per_batch=2"], "second": ["units_per_batch=2"], "per_unit": ["units_per_batch=1",
                                                                                       "--no-steps"]}
    for name, (units, *flags) in runs.items():
        result = script("check_repeatability.py", *SMALL, "--set", units, *flags, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "8 records of 4 units" in result.stdout and "decode steps not compiled" in result.stdout  # CPU
    same = script("compare_runs.py", tmp_path / "first", tmp_path / "second")
    assert same.returncode == 0 and "outputs differ in 0 (batch shapes differ in 0" in same.stdout
    per_unit = script("compare_runs.py", tmp_path / "first", tmp_path / "per_unit")
    assert per_unit.returncode == 0 and "outputs differ in 0 (batch shapes differ in 8" in per_unit.stdout
    again = script("check_repeatability.py", *SMALL, "--out", tmp_path / "first")
    assert again.returncode == 2 and "exists" in again.stderr  # each process its own folder: nothing overwritten


def test_again_runs_the_units_a_second_time_in_the_process_and_compares_the_passes(tmp_path):
    result = script("check_repeatability.py", *SMALL, "--set", "units_per_batch=2", "--again",
                    "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"again in this process: 8 records in {tmp_path / 'run' / 'again'}, units ")
    assert "8 records in both, outputs differ in 0 (batch shapes differ in 0, both in 0)" in line
    same = script("compare_runs.py", tmp_path / "run", tmp_path / "run" / "again")  # what the line above says
    assert same.returncode == 0 and "outputs differ in 0" in same.stdout
    # a second pass's file already there is refused before anything loads, and left as it was
    taken = tmp_path / "taken" / "again"
    taken.mkdir(parents=True)
    (output,) = (tmp_path / "run" / "again").glob("outputs_*.json")
    (taken / output.name).write_bytes(output.read_bytes())
    refused = script("check_repeatability.py", *SMALL, "--again", "--out", tmp_path / "taken")
    assert refused.returncode == 2 and f"{taken / output.name} exists" in refused.stderr
    assert (taken / output.name).read_bytes() == output.read_bytes()
    assert not list((tmp_path / "taken").glob("outputs_*.json"))


@pytest.mark.parametrize("device", ["gpu0", "cuda:64", "meta"])
def test_a_device_this_machine_lacks_is_one_line_before_any_model_loads(tmp_path, device):
    result = script("check_repeatability.py", *SMALL, "--device", device, "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.startswith(f"error: --device {device}")
    assert "Traceback" not in result.stderr and "cpu" in result.stderr and not (tmp_path / "out").exists()


def test_a_bad_setting_is_one_line_before_any_model_loads(tmp_path):
    result = script("check_repeatability.py", *SMALL, "--set", "n_rep=zero", "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "n_rep" in result.stderr and not (tmp_path / "out").exists()
