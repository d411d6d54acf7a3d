"""The per-file metrics table: computed once, read back exactly, rescored only where records or metrics changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from analysis.metrics_store import (
    SET_COLUMN,
    load_metrics,
    read_table,
    register_metrics,
    score_records,
    table_path,
    update_table,
)
from scripts.metrics import main as metrics_main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = next((ROOT / "results" / "samples").glob("outputs_*dreams*.json"))


def small_results(folder: Path, count: int = 12) -> Path:
    """A results file with the first `count` records of the dreams sample."""
    path = folder / "outputs_small.json"
    path.write_text(json.dumps(json.loads(SAMPLE.read_text())[:count]))
    return path


def test_rerun_reads_the_table_back_exactly_and_scores_nothing(tmp_path):
    results = small_results(tmp_path)
    names = register_metrics()
    first, scored = update_table(results, names)
    written = table_path(results).read_bytes()
    again, rescored = update_table(results, names)
    assert (scored, rescored) == (12, 0)
    pd.testing.assert_frame_equal(first, again)  # floats round-trip the CSV bit for bit
    assert table_path(results).read_bytes() == written  # not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs_small.json", "outputs_small.metrics.csv"]


def test_only_new_records_are_scored_and_order_follows_the_file(tmp_path):
    results = small_results(tmp_path, 8)
    names = register_metrics()
    update_table(results, names)
    records = json.loads(SAMPLE.read_text())[:12]
    results.write_text(json.dumps(records[8:] + records[:8]))
    table, scored = update_table(results, names)
    assert scored == 4
    pd.testing.assert_frame_equal(table, score_records(records[8:] + records[:8], names))


def test_a_changed_metric_set_rescores_every_row(tmp_path):
    results = small_results(tmp_path, 4)
    names = register_metrics()
    update_table(results, names)
    table = pd.read_csv(table_path(results))
    table[SET_COLUMN] = "0123456789ab"  # as written under another metric version
    table.to_csv(table_path(results), index=False)
    assert read_table(table_path(results), names).empty
    assert update_table(results, names)[1] == 4


def test_load_metrics_counts_a_record_once_across_files(tmp_path):
    results = small_results(tmp_path, 6)
    copy = tmp_path / "outputs_copy.json"
    shutil.copy(results, copy)
    frame = load_metrics([results, copy])
    assert len(frame) == 6 and frame["key"].is_unique and table_path(copy).exists()
    assert set(register_metrics()) <= set(frame.columns)


def test_cli(tmp_path, capsys):
    results = small_results(tmp_path, 3)
    assert metrics_main([str(results), "--workers", "1"]) == 0
    assert "3 records, 3 scored" in capsys.readouterr().out
    assert metrics_main([str(tmp_path / "missing.json")]) == 2


def test_a_regenerated_output_under_the_same_key_is_rescored_and_hashes_stay_text(tmp_path):
    results = small_results(tmp_path, 4)
    names = register_metrics()
    records = json.loads(results.read_text())
    records[0]["settings_hash"] = "001234567890"  # all digits: pandas would read it back as a number
    results.write_text(json.dumps(records))
    update_table(results, names)
    records[1]["output"] = "The the the the the the."  # same record key, new text
    results.write_text(json.dumps(records))
    table, scored = update_table(results, names)
    assert scored == 1 and table.loc[1, "distinct_1"] == 1 / 6  # one distinct word in six
    assert read_table(table_path(results), names)["settings_hash"].iloc[0] == "001234567890"
    pd.testing.assert_frame_equal(table, score_records(records, names))
