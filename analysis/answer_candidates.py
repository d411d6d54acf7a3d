"""Answer keys and the candidates a piece of text offers for one, by the key's kind.

A reader maps a text (a stated answer or a final sentence) to its set of candidates: `KEY` for each
that matches the key, the normalised candidate itself otherwise. analysis/answers.py decides which
text is the final answer; a verdict is right only when that set is exactly {KEY}.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from analysis import answer_text as at

FORMS_FILE = Path(__file__).parent / "data" / "answer_forms.toml"
KEY = "KEY"  # what a candidate that matches the key becomes
Reader = Callable[[str], set]

_NEGATION = {"not", "never", "no"}
_SKIPPED = {"a", "an", "the", "exactly", "really", "just", "to", "be"}
_NEGATIVE_WORDS = {"no", "never", "cannot", "neither", "nor", "nothing", "none", "nobody"}
# Words of the question's frame, not of its proposition ("Can we conclude that X?" asks about X).
_FRAME_LEMMAS = {"conclude", "say", "true"}
_NOT_ANSWERS = {"longer", "more", "one", "doubt", "matter", "way"}  # "no longer" negates, it does not answer
SHORT_REPLY = 4  # a reply of this many words or fewer is all answer ("The Pacific Ocean.")
_MODIFIER_DEPS = {"amod", "compound", "nmod", "poss", "nummod", "conj"}
_ANSWER_DEPS = {"ROOT", "nsubj", "nsubjpass", "attr", "acomp", "appos", "npadvmod", "oprd"}
_ANSWER_VERBS = {"make", "give", "be", "become", "equal", "get"}
_WH_TAGS = {"WDT", "WP", "WP$", "WRB"}
_QUOTED = re.compile(r"'([^'\s]+)'")


@dataclass(frozen=True)
class Key:
    """A parsed answer key: its kind and the normalised values that count as right."""

    kind: str  # "number", "yesno" or "word"
    values: frozenset  # floats (number), {"yes"} or {"no"} (yesno), lower-case forms (word)


@lru_cache(maxsize=1)
def answer_forms() -> dict:
    """The equivalents file: {"forms": {key: [forms]}, "classes": {name: [members]}}."""
    with FORMS_FILE.open("rb") as handle:
        return tomllib.load(handle)


def parse_key(key: str) -> Key:
    """The key's kind and accepted values; "|" separates alternatives ("Pacific|Pacific Ocean")."""
    alternatives = [alt.strip() for alt in key.split("|") if alt.strip()]
    if not alternatives:
        raise ValueError(f"answer key {key!r} is empty; give an answer or leave the key out (None)")
    values = [_number_value(alt) for alt in alternatives]
    if all(value is not None for value in values):
        return Key("number", frozenset(values))
    lowered = {alt.lower() for alt in alternatives}
    if lowered in ({"yes"}, {"no"}):
        return Key("yesno", frozenset(lowered))
    return Key("word", frozenset(lowered | _listed_forms(lowered)))


def _listed_forms(keys: set[str]) -> set[str]:
    """The equivalent forms the data file lists for these keys."""
    return {form.lower() for key in keys for form in answer_forms()["forms"].get(key, ())}


def _number_value(text: str) -> float | None:
    """The single number a key alternative states ("96", "1.5", "nine"), None if it is not one number."""
    digits = at.number_words_to_digits(text)
    found = at.numbers(digits, set())
    return found[0][0] if len(found) == 1 and not re.search(r"[a-z]", digits, re.IGNORECASE) else None


def negated(text: str, start: int) -> bool:
    """Whether the word before position `start` (skipping articles, "to", "be") negates it: "not 5",
    "isn't a 6", "not to be green"."""
    before = at.words(text[:start])[-4:]
    while before and before[-1] in _SKIPPED:
        before.pop()
    return bool(before) and (before[-1] in _NEGATION or before[-1].endswith("n't"))


def number_reader(key: Key, prompt: str) -> Reader:
    """Numbers, number words included; a fraction of two prompt operands is a restatement, not a value."""
    operands = at.prompt_numbers(prompt)

    def read(text: str) -> set:
        digits = at.number_words_to_digits(text)
        return {KEY if any(math.isclose(value, v, rel_tol=1e-9, abs_tol=1e-9) for v in key.values)
                else round(value, 9) for value, start in at.numbers(digits, operands) if not negated(digits, start)}
    return read


def yesno_reader(key: Key, prompt: str) -> Reader:
    """An explicit yes/no ("no" as a determiner is not one); else the polarity of a restatement."""
    proposition = _content_lemmas(_question_sentence(prompt)) - _FRAME_LEMMAS
    forms = {value: {value} | _listed_forms({value}) for value in ("yes", "no")}

    def read(text: str) -> set:
        doc = at.parse(text)
        found = {value for value, phrases in forms.items() for phrase in phrases if _states(phrase, text, doc)}
        if not found and _restates(doc, proposition):
            found = {"no" if _is_negative(doc) else "yes"}
        return {KEY if value in key.values else value for value in found}
    return read


def _states(phrase: str, text: str, doc) -> bool:
    """Whether the text says this yes/no phrase as an answer: a phrase of several words anywhere; one
    word ("yes", "no") only as an interjection, the first word or in a reply of two words at most.
    Not "no" as a determiner or in "no longer", "no one": those negate, they do not answer."""
    if " " in phrase:
        return _has_phrase(text, phrase)
    short = len(at.words(text)) <= 2
    return any(token.lower_ == phrase and (token.pos_ == "INTJ" or token.i == _first_word(doc) or short)
               and token.pos_ != "DET" and doc[token.i + 1:token.i + 2].text.lower() not in _NOT_ANSWERS
               for token in doc)


def _first_word(doc) -> int:
    return next((token.i for token in doc if token.is_alpha), -1)


def _restates(doc, proposition: set[str]) -> bool:
    """A declarative sentence that states the question's proposition (every content lemma), or denies
    that one can conclude: "a salmon is not a mammal", "we cannot conclude that"."""
    if any(token.tag_ in _WH_TAGS for token in doc) or (len(doc) and doc[0].lower_ == "if"):
        return False
    lemmas = _content_lemmas(doc)
    return bool(proposition) and proposition <= lemmas or ("conclude" in lemmas and _is_negative(doc))


def _has_phrase(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


def _is_negative(doc) -> bool:
    return any(token.dep_ == "neg" or token.lower_ in _NEGATIVE_WORDS for token in doc)


def _question_sentence(prompt: str):
    """The prompt's last question (its whole text when it asks none)."""
    questions = [s for s in at.parse_prompt(prompt).sents if s.text.rstrip().endswith("?")]
    return questions[-1] if questions else at.parse_prompt(prompt)


def _content_lemmas(tokens) -> set[str]:
    """Lemmas of content words; a capital letter is a name here ("Is A to the left of C?"), not "a"."""
    return {token.lemma_.lower() for token in tokens if token.is_alpha
            and (not token.is_stop or (len(token) == 1 and token.text.isupper() and token.i > 0))}


def word_reader(key: Key, prompt: str) -> Reader:
    """The key's forms; rivals: the prompt's options and names, same-class words, words coordinated with a hit.

    A word counts where it answers: in a reply of a few words, or (spaCy) as the root, subject,
    attribute or apposition of its clause, or the object of "make/give/be" ("blue and yellow make
    green"); not in passing ("I took the green apple", "bigger than Saturn").
    """
    rivals = {rival for rival in prompt_options(prompt) | _class_rivals(key) if rival.lower() not in key.values}

    def read(text: str) -> set:
        hits = [m for form in key.values for m in _matches(form, text, False) if _answers(text, m)]
        found = {rival.lower() for rival in rivals
                 for m in _matches(rival, text, rival[:1].isupper()) if _answers(text, m)}
        if hits:
            found |= {KEY} | _coordinated(text, hits, key)
        return found
    return read


def _answers(text: str, match: re.Match) -> bool:
    """Whether the matched word is put forward as an answer: not negated, and in an answering position."""
    if negated(text, match.start()):
        return False
    if len(at.words(text)) <= SHORT_REPLY:
        return True
    doc = at.parse(text)
    token = next((t for t in doc if match.start() <= t.idx < match.end()), None)
    for _ in range(4):  # from a modifier to the noun it modifies, from a conjunct to the first one
        if token is None or token.dep_ not in _MODIFIER_DEPS:
            break
        token = token.head
    return token is not None and (token.dep_ in _ANSWER_DEPS
                                  or token.dep_ == "dobj" and token.head.lemma_ in _ANSWER_VERBS)


def _matches(form: str, text: str, case_sensitive: bool) -> list[re.Match]:
    flags = 0 if case_sensitive else re.IGNORECASE
    return list(re.finditer(rf"(?<!\w){re.escape(form)}(?!\w)", text, flags))


def _coordinated(text: str, hits: list[re.Match], key: Key) -> set[str]:
    """Content words joined to a hit by a conjunction ("Paris or Lyon"): a second candidate."""
    doc = at.parse(text)
    hit_tokens = {t.i for t in doc for m in hits if m.start() <= t.idx < m.end()}
    joined = set()
    for token in doc:
        if token.dep_ == "conj" and (token.head.i in hit_tokens) != (token.i in hit_tokens):
            other = token if token.i not in hit_tokens else token.head
            if other.is_alpha and not other.is_stop and other.lower_ not in key.values:
                joined.add(other.lower_)
    return joined


def _class_rivals(key: Key) -> set[str]:
    """The other members of every class (data file) that holds one of the key's forms."""
    classes = answer_forms()["classes"].values()
    return {member for members in classes if key.values & {m.lower() for m in members} for member in members}


@lru_cache(maxsize=256)
def prompt_options(prompt: str) -> set[str]:
    """Answers the prompt offers: items of a comma list, single quoted words, names of people."""
    options = {word for word in _QUOTED.findall(prompt) if word.isalpha()}
    for sentence in at.parse_prompt(prompt).sents:
        listed = sentence.text.rsplit(":", 1)[-1]
        if listed.count(",") >= 2:
            items = re.split(r",|\bor\b|\band\b", listed.strip(" ?.!"))
            options |= {item.strip() for item in items if re.fullmatch(r"[A-Za-z][\w' -]*", item.strip())}
    unquoted = _QUOTED.sub(" ", prompt)
    options |= {ent.text for ent in at.parse_prompt(unquoted).ents if ent.label_ == "PERSON"}
    return options
