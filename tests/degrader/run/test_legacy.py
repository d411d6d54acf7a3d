"""Result files of the original thesis pipeline (std_dev/degrad_level, no level_value): read, planned, resumed.

The fixture holds 4 original records of dreams on the embedded model, mult_gauss on attn_only:
(level 0.0, rep 0) both prompts, (0.6, rep 0) prompt 1, and (0.0, rep 1) prompt 1 made at temperature
0.7 (not this config's settings). A config of 2 prompts x levels [0.0, 0.6] x 2 repetitions then misses
5 of its 8 records, in 3 units.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from degrader.run.keys import record_key
from degrader.run.legacy import normalise, original_settings_hash
from degrader.run.plan import missing_units, output_path
from degrader.run.store import CorruptOutputError, ResultStore, read_records
from tests.actors.conftest import records_of, small_config
from tests.conftest import ROOT

FIXTURE = (Path(__file__).parents[2] / "actors" / "fixtures"
           / "outputs_mult_gauss_embedded-gemma-3-270m_2025_05_20_dreams.json")
SMALL = ["--config", "dreams_it", "--gpus", "0", "--model", "embedded", "--max-prompts", "2", "--set", "n_rep=2",
         "--set", "max_new_tokens=4", "--set", "degradation_method=mult_gauss", "--set", "min_deg=0",
         "--set", "max_deg=0.6", "--set", "deg_steps=2"]
ADDED = {"level_value", "prompt_category", "answer_key", "settings_hash", "record_schema"}


def config():
    return small_config("max_prompts=2", "max_new_tokens=4", "max_deg=0.6")


@pytest.fixture
def old_file(tmp_path) -> Path:
    """A copy of the fixture where a launch with --results-dir tmp_path/results looks for its output."""
    path = output_path(config(), tmp_path / "results")
    path.parent.mkdir()
    shutil.copy(FIXTURE, path)
    return path


def test_normalise_adds_fields_and_changes_none():
    original = json.loads(FIXTURE.read_text())[0]
    before = json.dumps(original, sort_keys=True)
    record = normalise(original)
    assert json.dumps(original, sort_keys=True) == before  # the input is not mutated
    assert {k: record[k] for k in original} == original and set(record) - set(original) == ADDED
    assert (record["level_value"], record["prompt_category"], record["answer_key"]) == (0.0, "dream", None)
    assert record["settings_hash"] == original_settings_hash(42, 1.0, True, False)
    assert record["record_schema"] == "original"
    current = {**record, "settings_hash": "abc"}
    del current["record_schema"]
    assert normalise(current) is current  # a record of this pipeline is passed through untouched
    assert normalise({"i": 1}) == {"i": 1}  # so is a record of another kind (the store keeps other files too)
    sparse = {k: v for k, v in original.items() if k not in ("seed", "temperature", "do_sample", "load_4bit")}
    assert normalise({**sparse, "temperature": None})["settings_hash"] == record["settings_hash"]  # defaults


@pytest.mark.parametrize("fields,level", [({"std_dev": 0.35}, 0.35), ({"degrad_level": 76}, 76),
                                          ({"std_dev": 0.6, "degrad_level": 0.6}, 0.6),
                                          ({"std_dev": None, "degrad_level": 0.6}, 0.6)])
def test_the_level_comes_from_std_dev_or_degrad_level(fields, level):
    base = {"param_group_name": "attn_only", "degradation_method": "mult_gauss", "repeat_index": 0,
            "prompt_text": "Describe a dream.", "model_name": "google/gemma-3-4b-it", "prompt_group": "iq"}
    record = normalise({**base, **fields})
    assert record["level_value"] == level and record["prompt_category"] is None  # iq: not knowable


@pytest.mark.parametrize("changes,message", [
    ({"std_dev": 0.6, "degrad_level": 2}, "std_dev=0.6 and degrad_level=2; add level_value"),
    ({"std_dev": "high", "degrad_level": None}, "has no level: none of level_value, std_dev, degrad_level is a number"),
    ({"prompt_text": None}, "lacks prompt_text, which identify a record"),
])
def test_an_unreadable_old_record_is_an_error_naming_it(tmp_path, changes, message):
    records = json.loads(FIXTURE.read_text())
    records[2].update(changes)
    records[2] = {k: v for k, v in records[2].items() if v is not None}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(records))
    before = path.read_bytes()
    with pytest.raises(CorruptOutputError, match=f"old.json, record 2: .*{re.escape(message)}"):
        read_records(path)
    with pytest.raises(CorruptOutputError, match="record 2"):
        ResultStore(path, record_key)
    assert path.read_bytes() == before


def test_old_and_new_levels_share_keys():
    old = normalise({**json.loads(FIXTURE.read_text())[2], "std_dev": 0.35, "degrad_level": 0.35})
    new = {**old, "level_value": 0.1 + 0.25}  # 0.35000000000000003, as a linear schedule may compute it
    assert record_key(old) == record_key(new)


def test_read_records_normalises_without_touching_the_file(old_file):
    before = old_file.read_bytes()
    records = read_records(old_file)
    assert len(records) == 4 and all(r["record_schema"] == "original" for r in records)
    assert [r["level_value"] for r in records] == [0.0, 0.0, 0.6, 0.0]
    assert old_file.read_bytes() == before


def test_the_plan_counts_old_records_made_with_the_same_settings(old_file):
    done = {record_key(r) for r in read_records(old_file)}
    units = missing_units(config(), done)
    assert [(u.level, u.repeat_index, u.prompt_ids) for u in units] == [(0.0, 1, (0, 1)), (0.6, 0, (1,)),
                                                                        (0.6, 1, (0, 1))]
    assert len(missing_units(config().replace(temperature=0.7), done)) == 4  # rep 0 was made at 1.0
    assert len(missing_units(config().replace(seed=7), done)) == 4


def test_dry_run_on_an_old_file_shows_what_is_missing(old_file, capsys):
    from scripts.launch import main

    assert main([*SMALL, "--results-dir", str(old_file.parent), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "records         8 in all, 5 missing in 3 units" in out
    assert "in the file     4 records (4 of the original pipeline); 3 are of this plan, 1 of other" in out


@pytest.mark.filterwarnings("error::UserWarning")  # matplotlib's "no artists with labels" for an empty legend
def test_summarize_reads_an_old_file(old_file, tmp_path, capsys):
    from scripts.summarize import main

    assert main([str(old_file), "--out", str(tmp_path / "summary")]) == 0
    rows = (tmp_path / "summary" / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # (original settings at temperature 1.0 / 0.7) x levels present
    assert old_file.read_bytes() == FIXTURE.read_bytes()


@pytest.mark.slow
def test_resume_completes_an_old_file_and_keeps_its_fields(old_file, tmp_path, capsys):
    command = [sys.executable, str(ROOT / "scripts" / "launch.py"), *SMALL, "--results-dir", str(old_file.parent),
               "--logs-dir", str(tmp_path / "logs")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    records = records_of(old_file)
    old, new = records[:4], records[4:]
    assert len(new) == 5 and len({record_key(r) for r in records}) == 9
    for before, after in zip(json.loads(FIXTURE.read_text()), old, strict=True):
        assert {k: after[k] for k in before} == before and set(after) - set(before) == ADDED
    assert {r["settings_hash"] for r in new} == {config().result_hash()}
    assert sorted((r["level_value"], r["repeat_index"], r["prompt_id"]) for r in new) == [
        (0.0, 1, 1), (0.0, 1, 2), (0.6, 0, 2), (0.6, 1, 1), (0.6, 1, 2)]
    assert missing_units(config(), {record_key(r) for r in read_records(old_file)}) == []

    from scripts.summarize import main

    assert main([str(old_file), "--out", str(tmp_path / "summary")]) == 0
    table = capsys.readouterr().out
    assert config().result_hash() in table and original_settings_hash(42, 1.0, True, False) in table
