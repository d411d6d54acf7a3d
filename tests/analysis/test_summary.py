import json
from pathlib import Path

import pytest

from analysis.metrics import distinct, repetition
from analysis.summary import load, summarize
from analysis.table import metrics_frame


def test_text_metrics_by_hand():
    assert distinct("a b a b", 1) == 0.5
    assert distinct("A b, a B!", 2) == pytest.approx(2 / 3)
    assert repetition("a b c d a b c d") == pytest.approx(0.2)  # 5 four-grams, 4 distinct
    assert distinct("", 1) == 0.0 and repetition("a b c") == 0.0


def record(level, rep, output, tokens, category="math", answer="4", prompt="q1"):
    return {"degradation_method": "mult_gauss", "param_group_name": "attn_only", "level_value": level,
            "repeat_index": rep, "prompt_text": prompt, "prompt_id": prompt, "model_name": "m", "settings_hash": "h",
            "output": output, "tokens": tokens, "prompt_group": "iq", "prompt_category": category,
            "answer_key": answer}


FIXTURE = [
    record(0.0, 0, "It is 4", 3), record(0.0, 0, "yes it is", 5, "logic", "yes", "q2"),
    record(0.0, 1, "4 of course", 5), record(0.0, 1, "no", 1, "logic", "yes", "q2"),
    record(0.5, 0, "", 10), record(0.5, 1, "seven seven seven seven seven", 20),
]


def test_summary_numbers_by_hand(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps(FIXTURE + [FIXTURE[0]]))  # a duplicate is counted once
    records, notes = load([path])
    low, high = summarize(metrics_frame(records)).to_dict("records")
    assert (low["level_value"], low["n"], low["repetitions"]) == (0.0, 4, 2)
    assert low["tokens"] == pytest.approx(3.5)  # repetition means 4 and 3
    assert (high["n"], high["empty_rate"], high["tokens"]) == (2, 0.5, 15)
    assert high["repetition"] == pytest.approx(0.25)  # rep 0 empty: 0; rep 1: 2 four-grams, 1 distinct: 0.5
    assert notes == []


def test_partial_file_is_summarized_and_flagged(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps(FIXTURE[:2]))
    (tmp_path / "out.json.journal").write_text("".join(json.dumps(r) + "\n" for r in FIXTURE[2:4]))
    records, notes = load([path])
    assert len(records) == 4 and "partial" in notes[0]


def test_summary_orders_uni_quant_by_damage():
    quantised = [{**r, "degradation_method": "uni_quant", "level_value": n, "repeat_index": rep, "key": None}
                 for n in (4, 0, 1024, 64) for rep, r in enumerate(FIXTURE[:2])]
    table = summarize(metrics_frame(quantised))
    assert list(table["level_value"]) == [0, 1024, 64, 4]  # the control, then fewer values = more damage


SAMPLES = Path(__file__).resolve().parents[2] / "results" / "samples"


def test_the_committed_samples_summarize_all_three_tasks():
    records, notes = load(sorted(SAMPLES.glob("outputs_*.json")))
    table = summarize(metrics_frame(records))
    assert {(r.prompt_group, r.level_value) for r in table.itertuples()} == {
        (t, lv) for t in ("dreams", "iq", "cookie_theft") for lv in (0.0, 0.4, 0.8, 1.2)}
    assert all(r.n == 5 * {"dreams": 8, "iq": 65, "cookie_theft": 6}[r.prompt_group] for r in table.itertuples())
    dreams = table[table["prompt_group"] == "dreams"].set_index("level_value")
    assert dreams.loc[1.2, "tokens"] < dreams.loc[0.0, "tokens"]  # the lesion cuts the embedded model's dreams short
    assert "perplexity" not in table and notes == []  # the sample did not record it: no empty column
