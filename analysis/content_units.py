"""Content units of a Cookie Theft description: which of the picture's information units the text names.

The units (analysis/data/cookie_theft_units.toml, after Croisile et al. 1996 and Yorkston & Beukelman
1980; see its header for what was and was not checked) are matched on spaCy lemmas and on the lower-cased
words. The rules, in docs/analysis.md:
- an object, subject or place counts when one of its words is named outside a negation ("there is no
  mother", "without a stool", "I don't see a boy" name nothing);
- an action counts only through its verb: the verb must not be negated, and its subject (for a
  participle, the noun it modifies) must be one of the unit's agents, or, with no subject, one of the
  unit's anchors must be in the same sentence. A list of nouns therefore scores no action.
Per record: cu_count (units named), cu_efficiency (units per 100 words) and cu_balance, the left/right
balance of the scene, (pL - pR) / (pL + pR) with pL, pR the shares of the left and right units named.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.language import NO_NER, spacy_pipeline
from analysis.metrics import words
from analysis.registry import Metric, register

if TYPE_CHECKING:  # spaCy is imported on first use, so that registering the metrics stays cheap
    from spacy.matcher import Matcher
    from spacy.tokens import Token

logger = logging.getLogger(__name__)

UNITS_FILE = Path(__file__).parent / "data" / "cookie_theft_units.toml"
KINDS = ("subject", "object", "place", "action")
SIDES = ("left", "right", "centre")
NEGATORS = {"no", "not", "never", "n't", "nobody", "none", "nothing", "neither", "nor"}
# Verbs whose negation denies that the object is there ("there is no", "has no", "I can't see a").
EXISTENTIAL = {"be", "have", "exist"}
PERCEPTION = {"see", "notice", "find", "spot"}
FIRST_PERSON = {"i", "we"}
SUBJECT_DEPS = {"nsubj", "nsubjpass", "csubj"}
RELATIVE = {"who", "that", "which", "whom"}


@dataclass(frozen=True)
class Unit:
    """One information unit of the picture."""

    id: str
    label: str
    kind: str  # subject | object | place | action
    side: str  # left | right | centre, as in the original picture
    words: frozenset[str]  # single words, matched on lemma or lower-cased text
    phrases: tuple[str, ...] = ()  # multi-word lemma sequences, "*" = any one word
    agents: frozenset[str] = frozenset()  # actions: who may be the verb's subject
    anchors: frozenset[str] = frozenset()  # actions: needed in the sentence when the verb has no subject
    when_negated: frozenset[str] = frozenset()  # actions: words that count only when negated
    any_verb_by: frozenset[str] = frozenset()  # actions: any verb with one of these subjects counts


@dataclass(frozen=True)
class CookieScore:
    """The content-unit scores of one description."""

    units: tuple[str, ...]  # ids of the units named, in the list's order
    n_words: int
    left: float  # share of the left units named
    right: float  # share of the right units named

    @property
    def count(self) -> int:
        return len(self.units)

    @property
    def efficiency(self) -> float | None:
        """Units per 100 words; None for an output without words."""
        return 100.0 * self.count / self.n_words if self.n_words else None

    @property
    def balance(self) -> float | None:
        """(pL - pR) / (pL + pR) in [-1, 1], + = left-heavy; None when no side unit is named."""
        total = self.left + self.right
        return (self.left - self.right) / total if total else None


def _unit(entry: dict) -> Unit:
    """A unit from one [[unit]] table, its fields checked."""
    known = {f.name for f in fields(Unit)}
    unknown = set(entry) - known
    if unknown:
        raise ValueError(f"unit {entry.get('id')!r}: unknown fields {sorted(unknown)}; valid: {sorted(known)}")
    if entry.get("kind") not in KINDS or entry.get("side") not in SIDES:
        raise ValueError(f"unit {entry.get('id')!r}: kind must be one of {KINDS} and side one of {SIDES}")
    if entry["kind"] == "action" and not (entry.get("agents") or entry.get("anchors")):
        raise ValueError(f"action unit {entry['id']!r} needs agents or anchors")
    sets = {name: frozenset(w.lower() for w in entry.get(name, ()))
            for name in ("words", "agents", "anchors", "when_negated", "any_verb_by")}
    return Unit(entry["id"], entry["label"], entry["kind"], entry["side"], phrases=tuple(entry.get("phrases", ())),
                **sets)


def _read(path: Path) -> dict:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


@lru_cache(maxsize=4)
def load_units(path: Path = UNITS_FILE) -> tuple[Unit, ...]:
    """The units of the data file, in its order; a duplicate id or a malformed unit raises."""
    units = tuple(_unit(entry) for entry in _read(path)["unit"])
    ids = [unit.id for unit in units]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: unit ids repeat: {sorted(i for i in ids if ids.count(i) > 1)}")
    return units


TEST_NAMES = "test_names"  # matcher key of the test's own names


@lru_cache(maxsize=1)
def _phrase_matcher() -> Matcher:
    """One spaCy Matcher: every unit's phrases (on lemmas, keyed by unit id) and the test's names."""
    from spacy.matcher import Matcher

    matcher = Matcher(spacy_pipeline().vocab)
    for unit in load_units():
        patterns = [[{} if word == "*" else {"LEMMA": word} for word in phrase.split()] for phrase in unit.phrases]
        if patterns:
            matcher.add(unit.id, patterns)
    names = _read(UNITS_FILE).get("test_names", [])
    if names:
        matcher.add(TEST_NAMES, [[{"LOWER": word} for word in name.lower().split()] for name in names])
    return matcher


@dataclass(frozen=True)
class _Parse:
    """A parsed description: its words outside the test's names, and each unit's phrase roots."""

    tokens: tuple[Token, ...]
    phrase_roots: dict[str, list[Token]]

    def in_sentence(self, token: Token) -> list[Token]:
        return [other for other in self.tokens if other.sent == token.sent]


def _parse(text: str) -> _Parse:
    """Parse, drop the words inside the test's names, and find the units' phrases."""
    doc = spacy_pipeline()(text, disable=NO_NER)
    matches = [(doc.vocab.strings[key], doc[start:end]) for key, start, end in _phrase_matcher()(doc)]
    skipped = {token.i for key, span in matches if key == TEST_NAMES for token in span}
    roots: dict[str, list[Token]] = {}
    for key, span in matches:
        if key != TEST_NAMES and span.root.i not in skipped:
            roots.setdefault(key, []).append(span.root)
    return _Parse(tuple(t for t in doc if t.i not in skipped), roots)


def _names(token: Token) -> set[str]:
    """The forms a word is matched by: its lemma and its lower-cased text."""
    return {token.lemma_.lower(), token.lower_}


def _has_negator(token: Token) -> bool:
    """A `neg` child, or a negating determiner ("no mother")."""
    return any(child.dep_ == "neg" or (child.dep_ == "det" and child.lower_ in NEGATORS) for child in token.children)


def entity_negated(token: Token) -> bool:
    """The noun is named only to deny it: "no mother", "there isn't a boy", "without a stool", "I don't see a boy"."""
    if _has_negator(token):
        return True
    head = token.head
    if token.dep_ == "conj" and head is not token:
        return entity_negated(head)
    if token.dep_ == "pobj" and head.lower_ == "without":
        return True
    if token.dep_ in ("attr", "dobj", "nsubj") and head.lemma_ in EXISTENTIAL and _has_negator(head):
        return token.dep_ != "nsubj" or any(c.lower_ == "there" for c in head.children)
    if token.dep_ == "dobj" and head.lemma_ in PERCEPTION and _has_negator(head):
        return bool(_subjects(head) & FIRST_PERSON)
    return False


def _subject_tokens(verb: Token) -> list[Token]:
    """The verb's subject words; for a participle or relative clause, the noun it modifies.

    A verb joined to another ("is stealing and falling"), completing one ("is about to fall", "is not
    aware") or adding to one without its own subject ("stands on the stool taking cookies") takes that
    one's subject. A noun ("the overflow") has none."""
    own = [child for child in verb.children if child.dep_ in SUBJECT_DEPS and child.lower_ not in RELATIVE]
    if verb.dep_ == "acl" and verb.head.dep_ == "pobj" and not own:
        # "he is on a stool taking cookies": the parser hangs the participle on the nearest noun; it may
        # as well belong to the clause's subject, so both count
        return [verb.head, *_subject_tokens(_clause_verb(verb.head))]
    if verb.dep_ in ("relcl", "acl", "amod"):
        return own or [verb.head]
    if own or verb.pos_ in ("NOUN", "PROPN"):
        return own
    if verb.dep_ in ("conj", "xcomp", "acomp", "attr", "advcl") and verb.head is not verb:
        return _subject_tokens(verb.head)
    return []


def _clause_verb(token: Token) -> Token:
    """The nearest verb (or auxiliary used as the main verb) above the token; the root when there is none."""
    for ancestor in token.ancestors:
        if ancestor.pos_ in ("VERB", "AUX"):
            return ancestor
    return token.sent.root


def _subjects(verb: Token) -> set[str]:
    """Lemmas and lower-cased forms of the verb's subjects (empty when it has none)."""
    return set().union(*(_names(s) for s in _subject_tokens(verb)))


def action_negated(verb: Token) -> bool:
    """The action is denied: "isn't falling", "never dries", "nobody dries", "is not aware", "doesn't seem to care"."""
    if _has_negator(verb) or any(s.lower_ in NEGATORS or _has_negator(s) for s in _subject_tokens(verb)):
        return True
    return verb.dep_ in ("acomp", "attr", "xcomp") and _has_negator(verb.head)


def _action_done(unit: Unit, verb: Token, parse: _Parse) -> bool:
    """The unit's action at this token: by one of its agents, or, with no subject, near an anchor."""
    subjects = _subjects(verb)
    if subjects:
        return bool(subjects & unit.agents)
    return any(_names(token) & unit.anchors for token in parse.in_sentence(verb))


def _action_at(unit: Unit, token: Token, parse: _Parse, phrase: bool = False) -> bool:
    """Whether this token (a word, or with `phrase` the root of one of the unit's phrases) states the action."""
    names = _names(token)
    if names & unit.when_negated and action_negated(token):
        return _action_done(unit, token, parse)
    if (phrase or names & unit.words) and not action_negated(token):
        return _action_done(unit, token, parse)
    if unit.any_verb_by and token.pos_ == "VERB" and token.lemma_ != "be" and not action_negated(token):
        return bool(_subjects(token) & unit.any_verb_by)
    return False


def _named(unit: Unit, parse: _Parse) -> bool:
    """Whether the text names the unit by the rules of the module docstring."""
    phrase_roots = parse.phrase_roots.get(unit.id, [])
    if unit.kind == "action":
        return (any(_action_at(unit, token, parse) for token in parse.tokens)
                or any(_action_at(unit, root, parse, phrase=True) for root in phrase_roots))
    named = [t for t in parse.tokens if _names(t) & unit.words] + phrase_roots
    return any(not entity_negated(token) for token in named)


@lru_cache(maxsize=8192)
def score(text: str) -> CookieScore:
    """The content-unit scores of a description (cached: the three metrics share one parse)."""
    units = load_units()
    parse = _parse(text)
    found = tuple(unit.id for unit in units if _named(unit, parse))
    return CookieScore(found, len(words(text)), *(_side_share(units, found, side) for side in ("left", "right")))


def _side_share(units: tuple[Unit, ...], found: tuple[str, ...], side: str) -> float:
    """Share of the units on `side` that were named."""
    on_side = [unit.id for unit in units if unit.side == side]
    return sum(unit_id in found for unit_id in on_side) / len(on_side)


def units_mentioned(text: str) -> list[str]:
    """Ids of the units the text names, in the data file's order."""
    return list(score(text).units)


def _output(record: dict) -> str:
    return record.get("output") or ""


REFERENCE = "information units after Croisile et al. 1996 and Yorkston & Beukelman 1980 (analysis/data)"
for _metric in (
    Metric("cu_count", lambda r: score(_output(r)).count, 0, len(load_units()), True, REFERENCE,
           tasks=("cookie_theft",), family="picture"),
    Metric("cu_efficiency", lambda r: score(_output(r)).efficiency, 0, None, True,
           REFERENCE + "; units per 100 words", tasks=("cookie_theft",), family="picture"),
    Metric("cu_balance", lambda r: score(_output(r)).balance, -1, 1, None,
           REFERENCE + "; (pL - pR) / (pL + pR), 0 = balanced", tasks=("cookie_theft",), family="picture"),
):
    register(_metric)
