"""Cookie Theft content units: agreement with hand labels, the adversarial cases, and the worked numbers.

Run with `-s` to see the agreement figures (micro precision/recall, per unit and per description).
"""

from __future__ import annotations

import json
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from analysis.content_units import load_units, score, units_mentioned
from analysis.language import spacy_pipeline
from analysis.registry import get_metric
from analysis.table import metrics_frame

FIXTURES = Path(__file__).parent / "fixtures" / "cookie_theft_descriptions.toml"
SAMPLE = (Path(__file__).resolve().parents[2] / "results" / "samples"
          / "outputs_mult_gauss_embedded-gemma-3-270m_2025_06_24_cookies.json")
UNIT_IDS = [unit.id for unit in load_units()]
# Lower bounds below what the scorer reaches on the fixtures (printed by test_agreement), so that a change
# that loses agreement fails while small wording changes in the fixtures do not.
MIN_PRECISION = 0.90
MIN_RECALL = 0.90


def descriptions() -> list[dict]:
    with open(FIXTURES, "rb") as handle:
        return tomllib.load(handle)["description"]


def _tally(cases: list[dict]) -> tuple[Counter, Counter, Counter, list[str]]:
    """True positives, false positives and false negatives per unit, and one line per disagreement."""
    tp, fp, fn, lines = Counter(), Counter(), Counter(), []
    for case in cases:
        found, truth = set(units_mentioned(case["text"])), set(case["units"])
        tp.update(found & truth)
        fp.update(found - truth)
        fn.update(truth - found)
        if found != truth:
            lines.append(f"  {case['name']}: extra {sorted(found - truth)}, missed {sorted(truth - found)}")
    return tp, fp, fn, lines


def _ratio(num: int, den: int) -> float:
    return num / den if den else 1.0


def test_fixtures_are_well_formed():
    cases = descriptions()
    assert len(cases) >= 20
    assert {case.get("split", "dev") for case in cases} == {"dev", "heldout"}
    assert len({case["name"] for case in cases}) == len(cases)
    for case in cases:
        assert set(case["units"]) <= set(UNIT_IDS), case["name"]
    assert {"healthy", "sparse", "empty", "loop", "adversarial"} <= {case["kind"] for case in cases}


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_agreement_with_hand_labels(split):
    """Micro precision and recall of the units against the rater's, per split (see the fixture file)."""
    cases = [case for case in descriptions() if case.get("split", "dev") == split]
    tp, fp, fn, lines = _tally(cases)
    precision = _ratio(sum(tp.values()), sum(tp.values()) + sum(fp.values()))
    recall = _ratio(sum(tp.values()), sum(tp.values()) + sum(fn.values()))
    print(f"\ncontent units, {split}, {len(cases)} descriptions: micro precision {precision:.3f}, "
          f"recall {recall:.3f} (TP {sum(tp.values())}, FP {sum(fp.values())}, FN {sum(fn.values())})")
    for unit_id in UNIT_IDS:
        if fp[unit_id] or fn[unit_id]:
            print(f"  unit {unit_id}: TP {tp[unit_id]} FP {fp[unit_id]} FN {fn[unit_id]}")
    print("disagreements:\n" + "\n".join(lines))
    assert precision >= MIN_PRECISION and recall >= MIN_RECALL


@pytest.mark.parametrize("name", ["negation_absent_people", "noun_list", "noun_list_objects",
                                  "echo_prompt", "test_name", "off_topic_dream", "wrong_agent_washing",
                                  "empty", "special_tokens_only", "healthy_british_synonyms"])
def test_adversarial_case_exactly(name):
    """The cases the rules were written for are scored exactly as the rater did."""
    case = next(case for case in descriptions() if case["name"] == name)
    assert set(units_mentioned(case["text"])) == set(case["units"])


def test_a_list_of_nouns_scores_no_action():
    kinds = {unit.id: unit.kind for unit in load_units()}
    found = units_mentioned("boy, girl, mother, cookies, jar, stool, sink, water, plate, towel, floor, window")
    assert len(found) == 12 and all(kinds[unit_id] != "action" for unit_id in found)


def test_negation_removes_the_unit_and_its_affirmation_keeps_it():
    assert units_mentioned("There is no mother.") == []
    assert units_mentioned("There is a mother.") == ["woman"]
    assert units_mentioned("The boy isn't falling.") == ["boy"]
    assert units_mentioned("The boy is falling.") == ["boy", "falling"]
    assert units_mentioned("I can't see a girl. Nobody is drying. There isn't any water.") == []
    assert units_mentioned("I can see a girl. She is drying. There is water.") == ["girl", "water", "drying"]
    # unconcern is stated by a negation: "does not notice" is the unit, "notices" is not
    assert "woman_unaware" in units_mentioned("The mother does not notice the water.")
    assert "woman_unaware" not in units_mentioned("The mother notices the water.")


def test_cookies_lemma_quirk_is_covered():
    """en_core_web_sm lemmatises "cookies" to "cooky"; the unit's words list both."""
    assert [t.lemma_ for t in spacy_pipeline()("cookies")] == ["cooky"]
    assert units_mentioned("cookies") == ["cookie"]
    assert units_mentioned("biscuits") == ["cookie"]


def test_synonyms():
    assert units_mentioned("the lad") == ["boy"]
    assert units_mentioned("mum") == ["woman"]
    assert units_mentioned("the faucet") == ["faucet"]


def test_units_file_sides_and_kinds():
    units = load_units()
    assert Counter(unit.side for unit in units) == {"left": 10, "right": 12, "centre": 2}
    assert Counter(unit.kind for unit in units) == {"subject": 4, "place": 2, "object": 12, "action": 6}


def test_malformed_unit_is_rejected(tmp_path):
    bad = tmp_path / "units.toml"
    bad.write_text('[[unit]]\nid = "x"\nlabel = "x"\nkind = "thing"\nside = "left"\nwords = ["x"]\n')
    with pytest.raises(ValueError, match="kind must be one of"):
        load_units(bad)
    bad.write_text('[[unit]]\nid = "x"\nlabel = "x"\nkind = "object"\nside = "left"\nword = ["x"]\n')
    with pytest.raises(ValueError, match="unknown fields"):
        load_units(bad)


def test_worked_right_side_only():
    """11 words, 5 units (woman, dishes, sink, window, drying): 100 * 5 / 11 = 45.45; all right: balance -1."""
    result = score("A woman is drying dishes at the sink by the window.")
    assert (result.count, result.n_words) == (5, 11)
    assert result.efficiency == pytest.approx(45.4545, abs=1e-4)
    assert result.balance == pytest.approx(-1.0)


def test_worked_mixed_balance():
    """boy, stool (2 of 10 left), woman, sink (2 of 12 right), 13 words:
    efficiency 100 * 4 / 13 = 30.77; balance (2/10 - 2/12) / (2/10 + 2/12) = (12 - 10) / (12 + 10) = 1/11."""
    result = score("The boy is on the stool and the mother is at the sink.")
    assert set(result.units) == {"boy", "stool", "woman", "sink"}
    assert result.n_words == 13
    assert result.efficiency == pytest.approx(30.7692, abs=1e-4)
    assert result.balance == pytest.approx(1 / 11)


def test_worked_empty_and_centre_only():
    empty = score("")
    assert (empty.count, empty.efficiency, empty.balance) == (0, None, None)
    kitchen = score("A kitchen.")  # a centre unit only: efficiency 50, no side to balance
    assert (kitchen.count, kitchen.efficiency, kitchen.balance) == (1, 50.0, None)


def test_metrics_are_registered_for_cookie_theft_only():
    for name, direction in (("cu_count", True), ("cu_efficiency", True), ("cu_balance", None)):
        metric = get_metric(name)
        assert (metric.tasks, metric.family, metric.higher_is_healthier) == (("cookie_theft",), "picture", direction)
    assert not get_metric("cu_count").applies_to({"prompt_group": "dreams", "output": "a boy"})


def test_metrics_frame_on_the_real_sample():
    """The registered metrics score the real sample records; a dream record gets NaN; prints the speed."""
    records = json.loads(SAMPLE.read_text())
    score.cache_clear()
    start = time.perf_counter()
    frame = metrics_frame(records, ["cu_count", "cu_efficiency", "cu_balance"])
    elapsed = time.perf_counter() - start
    print(f"\n{len(records)} sample records scored in {elapsed:.2f} s ({len(records) / elapsed:.0f} records/s); "
          f"cu_count by level: {frame.groupby('level_value')['cu_count'].mean().round(2).to_dict()}")
    assert frame["cu_count"].notna().all() and (frame["cu_count"] >= 0).all()
    dream = {**records[0], "prompt_group": "dreams"}
    assert metrics_frame([dream], ["cu_count"])["cu_count"].isna().all()
