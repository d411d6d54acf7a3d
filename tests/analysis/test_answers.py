"""The IQ answer scorer against hand-written outputs that try to fool it, and its normaliser by hand."""

import json
import re
import time
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

from analysis import answer_text as at
from analysis.answer_candidates import parse_key, prompt_options
from analysis.answers import score_answer
from analysis.registry import get_metric
from configs.prompts import IQ_PROMPTS

FIXTURES = Path(__file__).parent / "fixtures" / "iq_outputs.toml"
SAMPLE = (Path(__file__).parents[2] / "results" / "samples"
          / "outputs_mult_gauss_embedded-gemma-3-270m_2025_05_04_IQ.json")
CASES = tomllib.loads(FIXTURES.read_text())["case"]


def old_rule(output: str, answer: str) -> bool:
    """The rule this scorer replaces (analysis/metrics.py before issue 14), kept here for the comparison."""
    answer, found = answer.strip().lower(), re.findall(r"[a-z0-9]+(?:[.'][a-z0-9]+)*", output.lower())
    if answer in ("yes", "no"):
        return next((w for w in found if w in ("yes", "no")), None) == answer
    if re.match(r"^-?\d+(\.\d+)?$", answer):
        return any(re.match(r"^-?\d+(\.\d+)?$", w) and float(w) == float(answer) for w in found[:30])
    return answer in found[:30]


def expected(case: dict) -> bool | None:
    return None if case["expected"] == "none" else case["expected"]


def agreement_by_category(cases: list[dict], verdicts: list) -> dict[str, tuple[int, int]]:
    """category -> (agreeing, cases), plus "overall"."""
    table = defaultdict(lambda: [0, 0])
    for case, verdict in zip(cases, verdicts, strict=True):
        for name in (case["category"], "overall"):
            table[name][0] += verdict == expected(case)
            table[name][1] += 1
    return {name: tuple(counts) for name, counts in table.items()}


def print_agreement(title: str, cases: list[dict]) -> tuple[dict, dict, list]:
    """Per-category agreement of the new and the old rule with the hand verdicts; returns both and the misses."""
    new = [score_answer(c["output"], c.get("key"), c["prompt"]) for c in cases]
    old = [old_rule(c["output"], c["key"]) if c.get("key") else None for c in cases]
    new_table, old_table = agreement_by_category(cases, new), agreement_by_category(cases, old)
    print(f"\n{title}\n{'category':<14}{'cases':>6}{'new':>8}{'old':>8}")
    for name, (agree, total) in sorted(new_table.items(), key=lambda item: item[0] == "overall"):
        print(f"{name:<14}{total:>6}{agree / total:>8.2f}{old_table[name][0] / total:>8.2f}")
    misses = [(c["category"], c["output"], verdict) for c, verdict in zip(cases, new, strict=True)
              if verdict != expected(c)]
    return new_table, old_table, misses


def test_fixtures_are_real_items():
    """Every fixture uses a real IQ prompt with its real key, and there are at least 60."""
    keys = {prompt.text: prompt.answer for prompt in IQ_PROMPTS}
    assert len(CASES) >= 60
    for case in CASES:
        assert case["prompt"] in keys, case["prompt"]
        assert case.get("key") == keys[case["prompt"]], case
    assert sum(expected(c) is True for c in CASES) >= 20 and sum(expected(c) is False for c in CASES) >= 30


def test_fixture_agreement_new_and_old_rule():
    """The scorer agrees with every hand verdict it was developed on; prints new- and old-rule agreement."""
    new_table, old_table, misses = print_agreement("development fixtures", [c for c in CASES if "set" not in c])
    assert not misses, misses
    assert old_table["overall"][0] < new_table["overall"][0]  # the comparison is not vacuous


def test_held_out_fixture_agreement():
    """Cases written after the rule was frozen, never used to tune it: agreement printed, misses listed."""
    new_table, old_table, misses = print_agreement("held-out fixtures", [c for c in CASES if c.get("set") == "holdout"])
    print("misses:", misses)
    agree, total = new_table["overall"]
    assert total >= 15 and agree / total >= 0.8 and agree > old_table["overall"][0]


ATTACKS = {  # outputs that carry no answer, built for every keyed item
    "echo": lambda item: item.text,
    "echo without ?": lambda item: item.text.rstrip("?"),
    "echo twice": lambda item: f"{item.text} {item.text}",
    "counting 0-100": lambda item: " ".join(str(i) for i in range(101)),
    "yes or no": lambda item: "Yes or no.",
    "options with the key": lambda item: f"A. yes B. no C. {item.answer} D. 42",
}


def test_no_attack_passes_any_keyed_item():
    """Echoes, counting, hedged yes/no and option lists score 0 of the 57 keyed items (the old rule: many)."""
    keyed = [item for item in IQ_PROMPTS if item.answer]
    print(f"\n{'attack':<22}{'new':>5}{'old':>5}  (of {len(keyed)} keyed items)")
    for name, attack in ATTACKS.items():
        new = sum(bool(score_answer(attack(item), item.answer, item.text)) for item in keyed)
        old = sum(old_rule(attack(item), item.answer) for item in keyed)
        print(f"{name:<22}{new:>5}{old:>5}")
        assert new == 0, name


def test_every_keyed_item_accepts_its_key_stated_plainly():
    """The rule is not strict by refusing everything: the key, said four usual ways, is right on all 57 items."""
    keyed = [item for item in IQ_PROMPTS if item.answer]
    for say in ("{}", "The answer is {}.", "**{}**", "I think it is {}."):
        refused = [item.text for item in keyed if not score_answer(say.format(item.answer), item.answer, item.text)]
        assert not refused, (say, refused)


@pytest.mark.parametrize("text,values", [
    ("six sides", [6.0]), ("twenty-four hours", [24.0]), ("one hundred and eighty km", [180.0]),
    ("zero degrees", [0.0]), ("one and a half", [1.5]), ("1,000 or 2.5", [1000.0, 2.5]),
    ("$15.00", [15.0]), ("30%", [30.0]), ("3/2", [1.5]), (".5", [0.5]), ("the 3rd", [3.0]), ("-4", [-4.0]),
])
def test_numbers_by_hand(text, values):
    assert [value for value, _ in at.numbers(at.number_words_to_digits(text), set())] == values


def test_fraction_of_prompt_operands_is_a_restatement():
    operands = at.prompt_numbers("What is 144 divided by 12?")
    assert operands == {144.0, 12.0}
    assert [v for v, _ in at.numbers("144/12", operands)] == [144.0, 12.0]
    assert [v for v, _ in at.numbers("24/2", operands)] == [12.0]


def test_keys_by_hand():
    assert parse_key("96").kind == "number" and parse_key("1.5").values == {1.5}
    assert parse_key("nine").values == {9.0}
    assert parse_key("No").kind == "yesno" and parse_key("yes").values == {"yes"}
    assert parse_key("Pacific").values == {"pacific", "pacific ocean"}  # from the data file
    assert parse_key("Big Apple|NYC").values == {"big apple", "nyc"}  # alternatives in the key string
    with pytest.raises(ValueError, match="empty"):
        parse_key(" | ")


def test_alternatives_in_the_key_string():
    prompt = "What is the capital of Japan?"
    assert score_answer("Edo", "Tokyo|Edo", prompt) is True
    assert score_answer("Edo", "Tokyo", prompt) is False
    assert score_answer("Tokyo or Kyoto", "Tokyo|Edo", prompt) is False


def test_markup_options_and_echo_by_hand():
    assert at.clean("<strong>9</strong> \\boxed{4} $x$") == "**9** **4**  x "
    assert at.lists_options("A. Ben B. Tom") and at.lists_options("(a) one\n(b) two")
    assert not at.lists_options("A. Ben is the shortest.")
    prompt = "No fish are mammals. A salmon is a fish. Is a salmon a mammal?"
    echo = [at.is_echo(s, prompt) for s in at.segments("No fish are mammals.\nIs it?\nA salmon is not a mammal.")]
    assert echo == [True, True, False]
    assert prompt_options("Which word does not belong: apple, banana, carrot, grape?") == {
        "apple", "banana", "carrot", "grape"}
    assert {"Tom", "Sam", "Ben"} <= prompt_options("Tom is taller than Sam. Sam is taller than Ben. "
                                                   "Who is the shortest?")


def test_registered_metric():
    metric = get_metric("answer_correct")
    assert (metric.family, metric.tasks, metric.higher_is_healthier) == ("iq", ("iq",), True)
    record = {"prompt_group": "iq", "prompt_text": "What is 7 squared?", "answer_key": "49", "output": "49"}
    assert metric.compute(record) == 1.0
    assert metric.compute({**record, "output": "7 squared"}) == 0.0
    assert metric.compute({**record, "answer_key": None}) is None


def test_committed_sample_at_sigma_zero():
    """On the real sample: the new rule credits nothing the old rule refused that lists options or echoes."""
    records = [r for r in json.loads(SAMPLE.read_text()) if r["answer_key"] and r["level_value"] == 0]
    old = [old_rule(r["output"], r["answer_key"]) for r in records]
    start = time.perf_counter()
    new = [score_answer(r["output"], r["answer_key"], r["prompt_text"]) for r in records]
    print(f"\nscoring speed: {1000 * (time.perf_counter() - start) / len(records):.1f} ms per output")
    print(f"sample sigma 0: {len(records)} keyed outputs; old credits {sum(old)}, new {sum(new)}; "
          f"old-only {sum(o and not n for o, n in zip(old, new, strict=True))}, "
          f"new-only {sum(n and not o for o, n in zip(old, new, strict=True))}")
    for record, o, n in zip(records, old, new, strict=True):
        if o != n:
            print(f"  old={o} new={n} key={record['answer_key']!r} output={record['output'][:90]!r}")
    assert not any(n and at.lists_options(at.clean(r["output"])) for r, n in zip(records, new, strict=True))
