"""The fault matrix: every failure is one clear line and a known exit code, and leaves the results as they were.

Fast cases call the launcher's `main` in this process (the checks run before Ray starts); the few
Ray cases (marked slow) launch scripts/launch.py as a user does, on tiny runs. Cases that need root
(a read-only bind mount, a small tmpfs) skip without it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from configs.experiments import ExperimentConfig, apply_overrides, check_image, get_config
from degrader.run.keys import record_key
from degrader.run.plan import output_path, planned_key
from degrader.run.preflight import PreflightError, check_address
from degrader.run.store import ResultStore, read_records
from scripts.launch import main
from tests.actors.conftest import LAUNCH, OUTPUT, SMALL_ARGS, records_of, stable, wait_for
from tests.conftest import ROOT

IS_ROOT = os.geteuid() == 0


def launch_main(tmp_path: Path, capsys, *args: str, results: Path | None = None, logs: Path | None = None):
    """main() in this process; returns (exit code, stderr + stdout)."""
    code = main([*args, "--results-dir", str(results or tmp_path / "results"),
                 "--logs-dir", str(logs or tmp_path / "logs")])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(code: int, text: str, expected_code: int, message: str) -> None:
    assert code == expected_code, text
    assert message in text, text
    assert "Traceback" not in text and "Ray dashboard" not in text, text


# ---- checks before Ray starts (fast, in this process) ----------------------------------------------------------

def test_results_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "results").write_text("not a folder")
    before = snapshot(tmp_path)
    code, text = launch_main(tmp_path, capsys, *SMALL_ARGS)
    assert_one_line_error(code, text, 2, "is a file, not a directory")
    assert snapshot(tmp_path) == before


def test_unusable_logs_path(tmp_path, capsys):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    code, text = launch_main(tmp_path, capsys, *SMALL_ARGS, logs=tmp_path / "blocker" / "logs")
    assert_one_line_error(code, text, 2, "--logs-dir")
    assert "not writable (Not a directory)" in text


@pytest.fixture
def read_only_results(tmp_path):
    """A results folder holding one file, made read-only: a read-only bind mount as root, else no write bits."""
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    if IS_ROOT:
        mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, check=False)
        remounted = mounted.returncode == 0 and subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, check=False).returncode == 0
        if not remounted:
            subprocess.run(["umount", str(folder)], capture_output=True, check=False)
            pytest.skip("root, but no bind mount here (a container without CAP_SYS_ADMIN)")
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_read_only_results_directory(tmp_path, capsys, read_only_results):
    before = snapshot(read_only_results)
    code, text = launch_main(tmp_path, capsys, *SMALL_ARGS, results=read_only_results)
    assert_one_line_error(code, text, 2, "is not writable")
    print(f"\nread-only case ran {'as root on a read-only bind mount' if IS_ROOT else 'unprivileged (no write bits)'}")
    assert snapshot(read_only_results) == before


@pytest.mark.parametrize("extra", [[], ["--dry-run"], ["--dry-run", "--force"]])
def test_json_that_is_not_a_results_file(tmp_path, capsys, extra):
    results = tmp_path / "results"
    results.mkdir()
    (results / OUTPUT).write_text('[{"hello": 1}]')
    before = snapshot(results)
    code, text = launch_main(tmp_path, capsys, *SMALL_ARGS, *extra)
    assert_one_line_error(code, text, 2, "is not a results file (record 1 has no field 'param_group_name')")
    assert snapshot(results) == before


def test_corrupt_output_with_dry_run(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / OUTPUT).write_bytes(b'[{"param_group_name": "attn_only", "out')
    code, text = launch_main(tmp_path, capsys, *SMALL_ARGS, "--dry-run")
    assert_one_line_error(code, text, 2, "is not valid JSON")
    assert (results / OUTPUT).read_bytes() == b'[{"param_group_name": "attn_only", "out'


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens on it once the probe is closed


def test_unreachable_address_fails_fast(tmp_path, capsys):
    port = closed_port()
    started = time.monotonic()
    code, text = launch_main(tmp_path, capsys, *SMALL_ARGS, "--address", f"127.0.0.1:{port}")
    assert_one_line_error(code, text, 2, f"--address 127.0.0.1:{port} is not reachable")
    assert time.monotonic() - started < 30


def test_address_that_never_answers_times_out():
    with socket.socket() as server:  # a listener whose backlog is full: the kernel drops further SYNs, connects hang
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]
        for client in queued:
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
        time.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(PreflightError, match=f"--address 127.0.0.1:{port} is not reachable within 1 s .timed out"):
            check_address(f"127.0.0.1:{port}", timeout=1.0)
        assert time.monotonic() - started < 5
        for client in queued:
            client.close()
    with pytest.raises(PreflightError, match="write HOST:PORT"):
        check_address("localhost")


def test_gpus_without_gpus_is_refused_before_ray(tmp_path, capsys):
    import torch

    if torch.cuda.device_count():
        pytest.skip("this machine has a GPU")
    code, text = launch_main(tmp_path, capsys, *SMALL_ARGS[:3], "1", *SMALL_ARGS[4:])
    assert_one_line_error(code, text, 2, "--gpus 1 but this machine has 0 GPUs")


def test_default_model_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing of the model on this machine
    code, text = launch_main(tmp_path, capsys, "--config", "dreams_it", "--gpus", "0")
    assert_one_line_error(code, text, 2, "no network access to the Hugging Face Hub: use --model embedded")
    code, text = launch_main(tmp_path, capsys, "--config", "dreams_it", "--gpus", "0", "--dry-run")
    assert code == 0 and "google/gemma-3-4b-it (Gemma3Config" in text and "Traceback" not in text
    assert not (tmp_path / "results").exists()


def test_local_model_folder_without_config(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    code, text = launch_main(tmp_path, capsys, *SMALL_ARGS[:4], "--model", str(tmp_path / "model"), *SMALL_ARGS[6:])
    assert_one_line_error(code, text, 2, "is a local path without config.json")


def test_missing_image_is_checked_when_planned_not_on_import(tmp_path, capsys):
    gone = ExperimentConfig.build("gone", "cookie_theft", image_enabled=True, image_filename=str(tmp_path / "gone.png"))
    with pytest.raises(ValueError, match="does not exist"):
        check_image(gone)  # constructing it (as the experiment table does on import) did not raise
    code, text = launch_main(tmp_path, capsys, "--config", "cookie_theft_it", "--model", "random:tiny-gemma3",
                             "--set", "image_filename=gone.png", "--dry-run")
    assert_one_line_error(code, text, 2, "gone.png does not exist")


def test_deleted_stand_in_picture_breaks_no_other_command(tmp_path):
    """The repository's configs with the picture deleted: --help and a task without a picture still work."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs", ignore=shutil.ignore_patterns("*.png", "__pycache__"))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import configs.experiments  # the copy without the picture, imported before launch.py puts ROOT first
        sys.path.insert(0, {str(ROOT)!r})
        from scripts.launch import main
        sys.exit(main(sys.argv[1:]))
    """)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", script, *args, "--results-dir", str(tmp_path / "r")],
                              capture_output=True, text=True, timeout=180, check=False)

    assert run("--help").returncode == 0
    assert run("--config", "dreams_it", "--model", "embedded", "--gpus", "0", "--dry-run").returncode == 0
    refused = run("--config", "cookie_theft_it", "--model", "random:tiny-gemma3", "--dry-run")
    assert refused.returncode == 2 and "cookie_theft_standin.png does not exist" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_method_change_brings_its_thesis_range(tmp_path, capsys):
    code, text = launch_main(tmp_path, capsys, "--config", "dreams_it", "--model", "embedded", "--gpus", "0",
                             "--set", "degradation_method=ablation", "--dry-run")
    assert code == 0, text
    assert "ablation levels from the thesis variant ablation_attn: min_deg=0.0, max_deg=0.8, deg_steps=17" in text
    assert "levels [0.0, 0.05, 0.1" in text and "0.8]" in text
    config = apply_overrides(get_config("dreams_it"), ["degradation_method=mult_gauss", "param_group_name=mlp_only"])
    assert (config.min_deg, config.max_deg, config.deg_steps) == (0.0, 0.5, 11)  # gauss_mlp, the group's own
    config = apply_overrides(get_config("dreams_it"), ["degradation_method=ablation", "deg_steps=3"])
    assert config.levels == [0.0, 0.4, 0.8]  # a given field wins over the default


# ---- the store: what is on disk is what is counted (no Ray) ----------------------------------------------------

def key(record: dict) -> str:
    return str(record["i"])


FILL_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    sys.path.insert(0, {root!r})
    from degrader.run.store import ResultStore, StoreWriteError
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))  # Python ignores SIGXFSZ: writes fail with EFBIG
    store = ResultStore(sys.argv[1], lambda r: str(r["i"]), flush_every=1, compact_every_s=float("inf"))
    i, acknowledged = len(store.records), []
    try:
        while True:
            store.add([{{"i": i, "text": "x" * 1000}}])
            acknowledged.append(i)
            i += 1
    except StoreWriteError as error:
        message = str(error)
    store.close()
    print(json.dumps({{"acknowledged": acknowledged, "message": message, "counted": len(store.records)}}))
""")


def test_file_size_limit_counts_only_what_is_on_disk(tmp_path):
    """RLIMIT_FSIZE (unprivileged): the failed append is not acknowledged, counted or left half-written."""
    path = tmp_path / "out.json"
    (tmp_path / ".out.json.999999.tmp").write_text("[{")  # a temporary file of an earlier crash
    child = subprocess.run([sys.executable, "-c", FILL_SCRIPT.format(root=str(ROOT)), str(path)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    on_disk = {key(r) for r in read_records(path)}
    print(f"\nfile size limit: {len(result['acknowledged'])} acknowledged, {len(on_disk)} on disk; {result['message']}")
    assert on_disk == {str(i) for i in result["acknowledged"]} and result["counted"] == len(on_disk)
    assert result["message"].startswith(f"file size limit reached writing {path}: {len(on_disk)} records saved, "
                                        "1 generated records not saved")
    assert not list(tmp_path.glob(".*.tmp"))
    journal = path.with_name("out.json.journal").read_text()
    assert journal.endswith("\n") and len(journal.splitlines()) == len(on_disk)  # no half line in front of the next
    store = ResultStore(path, key)  # with space again: everything saved is there, and the store goes on
    assert store.keys == on_disk and store.add([{"i": -1}]) == 1
    store.close()
    assert len(records_of(path)) == len(on_disk) + 1


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 64 KiB tmpfs (root only)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if not IS_ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                                     capture_output=True, check=False).returncode:
        pytest.skip("mounting a small filesystem needs root")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_disk_full_store(small_filesystem):
    from degrader.run.store import StoreWriteError

    store = ResultStore(small_filesystem / "out.json", key, flush_every=1, compact_every_s=float("inf"))
    saved = 0
    with pytest.raises(StoreWriteError, match="^disk full writing .*: (\\d+) records saved, 1 generated records not "
                                              "saved; free space and run the same command$") as raised:
        while True:
            store.add([{"i": saved, "text": "x" * 1000}])
            saved += 1
    assert f": {saved} records saved" in str(raised.value)
    with pytest.raises(StoreWriteError, match="2 generated records not saved"):
        store.add([{"i": 10**6}])  # refused at once, and counted
    store.close()
    assert len(read_records(small_filesystem / "out.json")) == saved == len(store.records)
    assert not list(small_filesystem.glob(".*.tmp"))


def test_conflicting_duplicates_are_kept_aside(tmp_path, caplog):
    path = tmp_path / "out.json"
    path.write_text(json.dumps([{"i": 0, "output": "a"}, {"i": 1, "output": "b"}, {"i": 0, "output": "a"},
                                {"i": 1, "output": "B"}]))
    path.with_name("out.json.journal").write_text(json.dumps({"i": 1, "output": "b2"}) + "\n")
    store = ResultStore(path, key)
    store.close()
    assert records_of(path) == [{"i": 0, "output": "a"}, {"i": 1, "output": "b"}]  # the first of each key
    conflicts = path.with_name("out.conflicts.json")
    assert records_of(conflicts) == [{"i": 1, "output": "B"}, {"i": 1, "output": "b2"}]  # the exact duplicate: dropped
    assert "2 records repeat a key" in caplog.text and str(conflicts) in caplog.text
    ResultStore(path, key).close()
    assert len(records_of(conflicts)) == 2  # nothing new to keep aside: the file is not touched again


def test_the_lock_names_its_holder(tmp_path):
    from degrader.run.store import OutputLockedError

    first = ResultStore(tmp_path / "out.json", key, owner="launch pid 12 on host-a, started 2026-01-01 10:00:00")
    with pytest.raises(OutputLockedError, match="launch pid 12 on host-a, started 2026-01-01 10:00:00"):
        ResultStore(tmp_path / "out.json", key)
    first.close()


# ---- a run with nothing to do (a real subprocess, no Ray) -----------------------------------------------------

def complete_output(path: Path, config) -> None:
    """A results file holding every planned record of `config`, plus an exact and a conflicting duplicate."""
    records = [{"param_group_name": config.param_group_name, "degradation_method": config.degradation_method,
                "level_value": level, "repeat_index": rep, "prompt_text": prompt.text,
                "model_name": "embedded:gemma-3-270m", "settings_hash": config.result_hash(), "output": "x"}
               for level in config.levels for rep in range(config.n_rep) for prompt in config.prompts]
    assert {record_key(r) for r in records} == {planned_key(config, r["level_value"], r["repeat_index"],
                                                            r["prompt_text"]) for r in records}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records + [records[0], {**records[1], "output": "other"}], indent=1))


def test_nothing_to_do_starts_no_ray_and_leaves_the_output_byte_identical(tmp_path):
    args = [*SMALL_ARGS, "--set", "n_rep=2"]
    config = apply_overrides(get_config("dreams_it"), ["model_name=embedded", "max_prompts=2", "max_new_tokens=4",
                                                       "degradation_method=mult_gauss", "min_deg=0", "max_deg=0.5",
                                                       "deg_steps=2", "n_rep=2"])
    results = tmp_path / "results"
    complete_output(output_path(config, results), config)
    before = snapshot(results)
    child = subprocess.run([*LAUNCH, *args, "--results-dir", str(results), "--logs-dir", str(tmp_path / "logs")],
                           capture_output=True, text=True, timeout=180, check=False)
    assert child.returncode == 0, child.stderr
    assert "nothing to do" in child.stderr and "Ray dashboard" not in child.stderr
    assert snapshot(results) == before


# ---- faults during a run (Ray, slow) ---------------------------------------------------------------------------

RUN = [*SMALL_ARGS, "--set", "n_rep=4"]  # 2 prompts x 2 levels x 4 repetitions = 16 records


def start(results: Path, logs: Path) -> subprocess.Popen:
    return subprocess.Popen([*LAUNCH, *RUN, "--results-dir", str(results), "--logs-dir", str(logs)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def writer_process(launcher: subprocess.Popen) -> psutil.Process | None:
    """The ResultWriter of this launch (a descendant of its local Ray), by its process title."""
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if "ResultWriter" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None



@pytest.mark.slow
def test_disk_full_run_stops_clearly_and_a_rerun_gives_the_writer_killed_runs_records(tmp_path, small_filesystem):
    """ENOSPC mid-run (a real 64 KiB filesystem): exit 1, one clear line, only saved records counted; with space
    again the same command completes, and its records equal those of a run whose ResultWriter was SIGKILLed."""
    subprocess.run(["mount", "-o", "remount,size=12k", str(small_filesystem)], check=True)
    launcher = start(small_filesystem, tmp_path / "logs")
    text = launcher.communicate(timeout=600)[0]
    print("\n--- disk full run ---\n" + text)
    assert launcher.returncode == 1, text
    assert "disk full writing" in text and "records saved" in text and "free space and run the same command" in text
    assert "Traceback" not in text, text
    saved = read_records(small_filesystem / OUTPUT)
    assert f": {len(saved)} records saved" in text and 0 < len(saved) < 16
    assert not list(small_filesystem.glob(".*.tmp"))
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_filesystem)], check=True)
    launcher = start(small_filesystem, tmp_path / "logs")
    text = launcher.communicate(timeout=600)[0]
    assert launcher.returncode == 0, text
    after_disk_full = records_of(small_filesystem / OUTPUT)
    assert len(after_disk_full) == 16 == len({record_key(r) for r in after_disk_full})
    assert [stable(r) for r in saved] == [stable(r) for r in after_disk_full[: len(saved)]]

    # the ResultWriter SIGKILLed after its first records: Ray restarts it, the run goes on and completes
    results = tmp_path / "killed"
    launcher = start(results, tmp_path / "logs")
    journal = results / (OUTPUT + ".journal")
    wait_for(lambda: journal.exists() and journal.stat().st_size > 0)
    writer = wait_for(lambda: writer_process(launcher))
    writer.send_signal(signal.SIGKILL)
    text = launcher.communicate(timeout=600)[0]
    assert launcher.returncode == 0, text
    assert "Traceback" not in text
    killed = records_of(results / OUTPUT)
    assert len(killed) == 16 == len({record_key(r) for r in killed})
    by_key = {record_key(r): stable(r) for r in killed}
    assert {record_key(r): stable(r) for r in after_disk_full} == by_key
