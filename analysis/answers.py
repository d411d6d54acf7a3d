"""IQ answer scoring: read the final answer of an output and compare it with the item's key.

The rule (docs/analysis.md, "IQ answer scoring"):
1. No key -> None (not applicable, never False). An empty output, or one that lays out lettered
   options ("A. Ben B. Tom"), is wrong.
2. Questions and near copies of a prompt sentence are echoes, not answers, and are dropped.
3. The final answer is read from explicit answer statements ("the answer is X", "Answer: X",
   "X is the answer", **X**, \\boxed{X}); without one, from the last remaining sentence that holds a
   candidate, narrowed to what follows its last "so/therefore/thus" and then its last "is/=/equals".
4. Candidates are numbers (number keys: number words, fractions, decimals; units, currency and % ignored),
   yes/no (explicit words, else the polarity of a restatement of the question), or words (the key's forms;
   rivals = the prompt's listed/quoted options and names, same-class words, words coordinated with a hit;
   a word counts only in an answering position). A candidate right after "not" does not count.
5. Right iff every candidate of the final answer is the key: two different candidates are wrong.
"""

from __future__ import annotations

import re

from analysis import answer_candidates as ac
from analysis import answer_text as at
from analysis.answer_candidates import Reader
from analysis.registry import Metric, register

_ANSWER_PHRASE = re.compile(
    r"\b(?:final |correct |right )?(?:answer|result|solution)(?: to (?:this|the) question)?\s*"
    r"(?:is|would be|will be|should be|=|:|-)\s*(.*)$", re.IGNORECASE)
_ANSWER_AFTER = re.compile(r"^(.*?)\s+is\s+the\s+(?:correct |right |final )?answer\b", re.IGNORECASE)
_ANSWER_ALONE = re.compile(r"^\W*(?:final |correct )?answer\W*$", re.IGNORECASE)
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CONCLUSION = re.compile(r"\b(?:so|therefore|thus|hence|which means|that means)\b", re.IGNORECASE)
# A predicate this short after the last copula is the answer itself ("The capital of France is Paris").
SHORT_PREDICATE = 6
_COPULA = re.compile(r"\b(?:is|are|was|were|equals|makes|gives)\b|=", re.IGNORECASE)


def score_answer(output: str, key: str | None, prompt: str = "") -> bool | None:
    """Whether the output's final answer is the key (None without a key); see the module docstring."""
    if key is None or not key.strip():
        return None
    parsed = ac.parse_key(key)
    text = at.clean(output or "")
    if not text.strip() or at.lists_options(text):
        return False
    return final_candidates(text, prompt, _candidate_reader(parsed, prompt)) == {ac.KEY}


def final_candidates(text: str, prompt: str, read: Reader) -> set:
    """The candidates of the final answer: explicit answer statements first, else the last sentence with one."""
    kept = [span.text for span in at.segments(text) if not at.is_echo(span, prompt)]
    stated = set().union(*(read(slot) for slot in _stated_slots(kept)))
    if stated:
        return stated
    for sentence in reversed(kept):
        found = _narrowed(sentence, read)
        if found:
            return found
    return set()


def _stated_slots(sentences: list[str]) -> list[str]:
    """The texts that an answer statement points at, in every kept sentence."""
    slots = []
    for index, sentence in enumerate(sentences):
        plain = sentence.replace("**", "")
        if _ANSWER_ALONE.match(plain) and index + 1 < len(sentences):
            slots.append(sentences[index + 1])
        slots.extend(match.group(1) for match in (_ANSWER_PHRASE.search(plain), _ANSWER_AFTER.search(plain))
                     if match and match.group(1).strip())
        slots.extend(_BOLD.findall(sentence))
    return slots


def _narrowed(sentence: str, read: Reader) -> set:
    """Candidates of a sentence's assertion: if-clauses dropped, then what follows the last conclusion
    word, then a short predicate after the last copula ("... is 12"), where those parts hold one."""
    sentence = _without_conditions(sentence)
    conclusion = _after_last(_CONCLUSION, sentence)
    if conclusion is not None and read(conclusion):
        sentence = conclusion
    predicate = _after_last(_COPULA, sentence)
    if predicate is not None and len(at.words(predicate)) <= SHORT_PREDICATE and read(predicate):
        sentence = predicate
    return read(sentence)


def _without_conditions(sentence: str) -> str:
    """The sentence without its if-clauses (spaCy: the subtree of a verb marked by "if"): a condition
    asserts nothing ("If you ran the marathon, ..." does not answer "ran")."""
    doc = at.parse(sentence)
    dropped = {t.i for head in doc if any(c.dep_ == "mark" and c.lower_ == "if" for c in head.children)
               for t in head.subtree}
    return "".join(token.text_with_ws for token in doc if token.i not in dropped)


def _after_last(pattern: re.Pattern, text: str) -> str | None:
    """The text after the last match of pattern (None without a match)."""
    matches = list(pattern.finditer(text))
    return text[matches[-1].end():] if matches else None


def _candidate_reader(key: ac.Key, prompt: str) -> Reader:
    """The function that lists a text's candidates, for this kind of key."""
    readers = {"number": ac.number_reader, "yesno": ac.yesno_reader, "word": ac.word_reader}
    return readers[key.kind](key, prompt)


def _answer_correct(record: dict) -> float | None:
    verdict = score_answer(record.get("output", ""), record.get("answer_key"), record.get("prompt_text", ""))
    return None if verdict is None else float(verdict)


register(Metric("answer_correct", _answer_correct, 0, 1, True,
                "final answer = key, two different candidates wrong (degrader, docs/analysis.md)",
                tasks=("iq",), family="iq"))
