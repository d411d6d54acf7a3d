"""The sweep benchmark's log parser and table, on a run log written the way the driver and launcher write it."""

from __future__ import annotations

import pytest

from scripts.benchmark_sweep import (
    LogTimings,
    RunResult,
    count_records,
    mark_same_text,
    markdown_table,
    parse_args,
    parse_timings,
)
from tests.conftest import OUTPUT_NAME, record, write_output

LOG_WITH_TIMINGS = """\
10:00:00 INFO [driver] log file logs/sweep_gauss_attn_embedded-gemma-3-270m_20261127_100000.log
10:00:05 INFO [driver] Ray dashboard: http://127.0.0.1:8265
10:00:20 INFO [ModelActor:cpu0 CPU] loaded embedded:gemma-3-270m on cpu in 12.0s
10:00:20 INFO [driver] warm-up for 1 units per batch: 30.5s
10:01:00 INFO [driver] timings {"variant": "gauss_attn", "ray_start_s": 5.0, "load_s": 12.0, "warm_up_s": 30.5, \
"first_record_s": 41.0, "generation_s": 8.0, "variant_s": 55.5}
10:01:01 INFO [driver] warm-up for 1 units per batch: 2.5s
10:01:20 INFO [driver] timings {"variant": "quant_attn", "ray_start_s": 0.0, "load_s": 0.5, "warm_up_s": 2.5, \
"first_record_s": 4.0, "generation_s": 7.5, "variant_s": 19.0}
10:01:21 INFO [driver] done: {'records': 2}
10:01:21 INFO [driver] timings {"total_s": 81.2}
"""

OLD_LOG = """\
10:00:00 INFO [driver] log file logs/sweep_gauss_attn_embedded-gemma-3-270m_20261127_100000.log
10:00:20 INFO [driver] warm-up for 1 units per batch: 30.5s
10:00:41 INFO [driver] warm-up for 2 units per batch: 1.5s
10:01:21 INFO [driver] done: {'records': 2}
"""


def test_parses_variant_and_total_timings():
    timings = parse_timings(LOG_WITH_TIMINGS)
    assert [v["variant"] for v in timings.variants] == ["gauss_attn", "quant_attn"]
    assert timings.variants[0] == {"variant": "gauss_attn", "ray_start_s": 5.0, "load_s": 12.0, "warm_up_s": 30.5,
                                   "ahead_s": None,  # a log of a driver before compile_ahead
                                   "first_record_s": 41.0, "generation_s": 8.0, "variant_s": 55.5}
    assert timings.total_s == 81.2
    assert timings.warm_ups_s == [30.5, 2.5]
    assert timings.missing == []


def test_log_without_timings_says_so_and_keeps_the_warm_ups():
    timings = parse_timings(OLD_LOG)
    assert timings.variants == [] and timings.total_s is None
    assert timings.warm_ups_s == [30.5, 1.5]
    assert any("per-variant" in note for note in timings.missing)
    assert any("total_s" in note for note in timings.missing)


def test_unreadable_timings_line_is_reported_not_raised():
    timings = parse_timings('10:00:00 INFO [driver] timings {"variant": "gauss_attn", \n')
    assert timings.variants == []
    timings = parse_timings('10:00:00 INFO [driver] timings {"variant": broken}\n')
    assert any("unreadable" in note for note in timings.missing)


def test_table_has_one_row_per_run_and_the_variants():
    full = RunResult("cold", 1, [], 0, 90.0, "a.log", parse_timings(LOG_WITH_TIMINGS), 2, 8, 0.5)
    old = RunResult("warm", 1, [], 1, 40.0, None, LogTimings(warm_ups_s=[3.0], missing=["no log file"]), 0, 0)
    table = markdown_table([full, old]).splitlines()
    assert table[2] == "| cold | 1 | 90.0 | 17.5 | 30.5 / 2.5 | 41.0 | 15.5 | 2 | 0.5 | - |"
    assert table[3] == "| warm (exit 1) | 1 | 40.0 | - | 3.0 | - | - | 0 | - | - |"
    assert sum(line.startswith("| cold | gauss_attn") or line.startswith("| cold | quant_attn") for line in table) == 2
    assert table[-1] == "note: no log file"


def test_arguments_after_the_separator_go_to_the_launch():
    args = parse_args(["--gpus", "0", "--runs", "warm", "--", "--config", "dreams_it", "--gpus", "2"])
    assert args.gpus == 0 and args.runs == ["warm"]
    assert args.launch_args == ["--config", "dreams_it", "--gpus", "2"]
    with pytest.raises(SystemExit):
        parse_args(["--runs", "hot", "--", "--config", "dreams_it"])
    with pytest.raises(SystemExit):
        parse_args(["--gpus", "1"])


def test_each_later_run_counts_the_records_with_the_first_runs_text(tmp_path):
    cold = [record("sea", "waves"), record("house", "a house"), record("dog", "a dog")]
    write_output(tmp_path / "cold", cold)
    write_output(tmp_path / "warm", [record("sea", "waves", duration=9.0), record("house", "a hut"), cold[2]])
    write_output(tmp_path / "again", cold[:2])  # cut short: one record missing
    runs = [RunResult(name, 1, [], 0, 1.0, None, LogTimings(), results_dir=str(tmp_path / name))
            for name in ("cold", "warm", "again")]
    mark_same_text(runs)
    assert [run.same_text for run in runs] == [None, "2/3", "2/3, 1 missing"]  # a run cut short is not the same
    [difference] = runs[1].differences  # printed under the table: which output, where its texts part
    assert difference.startswith(OUTPUT_NAME) and "outputs differ in 1" in difference
    assert "after 3-3 characters" in difference  # "a house" and "a hut" share "a h"
    assert markdown_table(runs).splitlines()[3].endswith("| 2/3 |")


def test_unreadable_records_leave_the_timings_table(tmp_path):
    write_output(tmp_path / "cold", [record("sea", "waves")])
    (tmp_path / "warm").mkdir()
    (tmp_path / "warm" / OUTPUT_NAME).write_text('[{"output": "wav')  # a run killed mid-write by hand, say
    runs = [RunResult(name, 1, [], 0, 1.0, None, LogTimings(), results_dir=str(tmp_path / name))
            for name in ("cold", "warm")]
    mark_same_text(runs)
    table = markdown_table(runs)
    assert runs[1].same_text is None and "note: records not compared:" in table and "not valid JSON" in table
    count_records(runs[1], tmp_path / "warm")  # as run_launch counts a run's records: a note, not a traceback
    assert runs[1].records == 0 and any("records not counted" in note for note in runs[1].timings.missing)


def test_runs_without_records_are_not_called_the_same(tmp_path):
    runs = [RunResult(name, 1, [], 1, 1.0, None, LogTimings(), results_dir=str(tmp_path / name))
            for name in ("cold", "warm")]  # both launches failed before writing anything
    mark_same_text(runs)
    assert runs[1].same_text is None and markdown_table(runs).splitlines()[3].endswith("| - |")


def test_records_are_counted_as_the_comparison_finds_outputs(tmp_path):
    write_output(tmp_path, None, journal=[record("sea", "waves")])  # stopped before its first compaction
    write_output(tmp_path, [record("sea", "old")], name=OUTPUT_NAME.replace(".json", ".conflicts.json"))
    result = RunResult("cold", 1, [], 0, 1.0, None, LogTimings())
    count_records(result, tmp_path)
    assert result.records == 1
