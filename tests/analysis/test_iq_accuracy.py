"""Per-cell IQ accuracy, its interval and its chance baseline, on hand-made records worked by hand."""

import numpy as np
import pandas as pd
import pytest

from analysis.iq_accuracy import category_accuracy

SQUARED, MINUS = "What is 7 squared?", "What is 100 minus 37?"


def record(rep, prompt, key, output, level=0.0, category="math", item=None):
    return {"prompt_group": "iq", "degradation_method": "mult_gauss", "param_group_name": "attn_only",
            "level_value": level, "prompt_category": category, "repeat_index": rep, "prompt_id": item or prompt,
            "prompt_text": prompt, "answer_key": key, "output": output}


RECORDS = [
    # level 0, two repetitions: rep 0 gets both right (1.0), rep 1 one of two (0.5)
    record(0, SQUARED, "49", "49"), record(0, MINUS, "63", "63"),
    record(1, SQUARED, "49", "49"), record(1, MINUS, "63", "12"),
    # level 1, one repetition, three items: one right of three
    record(0, SQUARED, "49", "49", level=1.0), record(0, MINUS, "63", "64", level=1.0),
    record(0, "What is 12 multiplied by 7?", "84", "144 / 12", level=1.0),
    # a creativity prompt has no key: not scored, not counted
    record(0, "List as many animals as you can.", None, "cat, dog", category="creativity"),
]


def test_accuracy_interval_and_chance_by_hand():
    table = category_accuracy(RECORDS, seed=0, permutations=200)
    print("\n" + table.to_string())
    assert list(table["level_value"]) == [0.0, 1.0] and set(table["prompt_category"]) == {"math"}
    two = table.iloc[0]
    assert (two["n"], two["repetitions"], two["items"]) == (4, 2, 2)
    assert two["accuracy"] == pytest.approx(0.75)  # mean of the repetition means 1.0 and 0.5
    # resampling two repetition means gives 0.5, 0.75 or 1.0: the percentile interval is [0.5, 1.0]
    assert (two["ci_low"], two["ci_high"], two["interval"]) == (0.5, 1.0, "bootstrap over 2 repetitions")
    # two items: a permutation keeps the keys (0.75) or swaps them (every output wrong: 0.0)
    assert (two["chance_low"], two["chance_high"]) == (0.0, 0.75)
    assert two["chance"] * 200 / 0.75 == pytest.approx(round(two["chance"] * 200 / 0.75))
    assert 0.25 < two["chance"] < 0.5


def test_single_repetition_falls_back_to_wilson():
    one = category_accuracy(RECORDS, seed=0, permutations=50).iloc[1]
    assert (one["n"], one["repetitions"], one["accuracy"]) == (3, 1, pytest.approx(1 / 3))
    assert one["interval"] == "wilson (1 repetition)"
    # Wilson, k=1, n=3, z=1.96: centre (1/3 + z²/6) / (1 + z²/3) = 0.4269, half-width 0.3654
    assert one["ci_low"] == pytest.approx(0.0615, abs=1e-3) and one["ci_high"] == pytest.approx(0.7923, abs=1e-3)


def test_seeded_and_reproducible():
    first = category_accuracy(RECORDS, seed=7, permutations=30)
    pd.testing.assert_frame_equal(first, category_accuracy(RECORDS, seed=7, permutations=30))
    state = np.random.get_state()[1][:5].copy()
    category_accuracy(RECORDS, seed=8, permutations=30)
    assert (np.random.get_state()[1][:5] == state).all()  # the global RNG is never touched


def test_yes_no_chance_is_near_the_share_of_the_key():
    """Logic items with keys yes/no/no: an output that always says "No" scores 2/3 against any permutation."""
    prompts = [("A is to the left of B, and B is to the left of C. Is A to the left of C?", "yes"),
               ("No fish are mammals. A salmon is a fish. Is a salmon a mammal?", "no"),
               ("All blips are blops, and no blops are blups. Can a blip be a blup?", "no")]
    records = [record(rep, p, k, "No.", category="logic") for rep in range(3) for p, k in prompts]
    row = category_accuracy(records, seed=1, permutations=100).iloc[0]
    assert row["accuracy"] == pytest.approx(2 / 3) and row["chance"] == pytest.approx(2 / 3)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_bad_arguments_and_no_keys():
    with pytest.raises(ValueError, match="permutations"):
        category_accuracy(RECORDS, permutations=0)
    empty = category_accuracy([RECORDS[-1]])
    assert empty.empty and "chance" in empty.columns
