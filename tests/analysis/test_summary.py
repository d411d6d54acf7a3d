import csv
from pathlib import Path
import json

import pytest

from analysis.metrics import distinct, repetition
from analysis.summary import load, summarize
from scripts.summarize import main as summarize_main


def test_text_metrics_by_hand():
    assert distinct("a b a b", 1) == 0.5
    assert distinct("A b, a B!", 2) == pytest.approx(2 / 3)
    assert repetition("a b c d a b c d") == pytest.approx(0.2)  # 5 four-grams, 4 distinct
    assert distinct("", 1) == 0.0 and repetition("a b c") == 0.0


def record(level, rep, output, tokens, category="math", answer="4", prompt="q1"):
    return {"degradation_method": "mult_gauss", "param_group_name": "attn_only", "level_value": level,
            "repeat_index": rep, "prompt_text": prompt, "model_name": "m", "settings_hash": "h", "output": output,
            "tokens": tokens, "prompt_category": category, "answer_key": answer}


FIXTURE = [
    record(0.0, 0, "It is 4", 3), record(0.0, 0, "yes it is", 5, "logic", "yes", "q2"),
    record(0.0, 1, "4 of course", 5), record(0.0, 1, "no", 1, "logic", "yes", "q2"),
    record(0.5, 0, "", 10), record(0.5, 1, "seven seven seven seven seven", 20),
]


def test_summary_numbers_by_hand(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps(FIXTURE + [FIXTURE[0]]))  # a duplicate is counted once
    records, notes = load([path])
    low, high = summarize(records)
    assert (low["level"], low["n"], low["repetitions"]) == (0.0, 4, 2)
    assert low["tokens"] == pytest.approx(3.5)  # repetition means 4 and 3
    assert low["tokens_spread"] == pytest.approx(0.5)
    assert low["accuracy_math"] == 1.0 and low["accuracy_logic"] == 0.5
    assert (high["n"], high["empty_rate"], high["tokens"], high["tokens_spread"]) == (2, 0.5, 15, 5)
    assert high["repetition"] == pytest.approx(0.25)  # rep 0 empty: 0; rep 1: 2 four-grams, 1 distinct: 0.5
    assert high["accuracy_math"] == 0.0 and high["accuracy_math_spread"] == 0.0 and notes == []
    assert low["accuracy_logic_spread"] == pytest.approx(0.5)  # rep 0 right, rep 1 wrong


def test_partial_file_is_summarized_and_flagged(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps(FIXTURE[:2]))
    (tmp_path / "out.json.journal").write_text("".join(json.dumps(r) + "\n" for r in FIXTURE[2:4]))
    records, notes = load([path])
    assert len(records) == 4 and "partial" in notes[0]


def test_script_writes_csv_markdown_and_plots(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps(FIXTURE))
    assert summarize_main([str(path), "--out", str(tmp_path / "summary")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "summary" / "summary.csv")))
    assert [r["level"] for r in rows] == ["0.0", "0.5"]
    assert "| m |  | h | mult_gauss | attn_only | 0.5 | 2 |" in (tmp_path / "summary" / "summary.md").read_text()
    assert (tmp_path / "summary" / "tokens.png").stat().st_size > 1000
    assert (tmp_path / "summary" / "accuracy_math.png").exists()


SAMPLES = Path(__file__).resolve().parents[2] / "results" / "samples"


def test_the_committed_samples_summarize_all_three_tasks():
    records, notes = load(sorted(SAMPLES.glob("outputs_*.json")))
    rows = summarize(records)
    assert {(r["task"], r["level"]) for r in rows} == {(t, lv) for t in ("dreams", "iq", "cookie_theft")
                                                        for lv in (0.0, 0.6, 1.2)}
    iq = {r["level"]: r for r in rows if r["task"] == "iq"}
    assert {"accuracy_math", "accuracy_language", "accuracy_logic", "accuracy_factual"} <= set(iq[0.0])
    assert iq[0.0]["accuracy_logic"] > iq[1.2]["accuracy_logic"]  # the lesion costs the embedded model its logic
    assert all(r["n"] == 2 * {"dreams": 8, "iq": 65, "cookie_theft": 6}[r["task"]] for r in rows) and notes == []
