"""Discourse metrics of one output, from one shared spaCy parse: the thesis's and clinical discourse analysis's.

A *word* is a spaCy token that is not punctuation, whitespace or a symbol (UPOS PUNCT, SPACE, SYM);
numbers, particles ("n't") and unknown strings (X) are words. Sentences are spaCy's (dependency-parse
boundaries); a sentence without a word does not count. Each metric returns None where it is undefined
(no word, no sentence pair, ...): empty outputs are counted by `empty_rate`, not scored as 0 here.
The parse of a text is cached, so the thirteen metrics of a record share one parse; `prepare` parses a
batch through `nlp.pipe` (the table builder calls it per chunk).
"""

from __future__ import annotations

import functools
import statistics
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np
from wordfreq import zipf_frequency

from analysis.language import NO_NER, encoder_threads, sentence_encoder, spacy_pipeline, wordnet
from analysis.registry import Metric, register

NOT_WORDS = {"PUNCT", "SPACE", "SYM"}
CONTENT = {"NOUN", "PROPN", "VERB", "ADJ", "ADV"}  # lexical density's content words
OPEN_CLASS = {"ADJ", "ADV", "INTJ", "NOUN", "PROPN", "VERB"}  # Universal Dependencies' open classes
CLOSED_CLASS = {"ADP", "AUX", "CCONJ", "DET", "NUM", "PART", "PRON", "SCONJ"}
PROPOSITIONS = {"VERB", "ADJ", "ADV", "ADP", "CCONJ", "SCONJ"}  # CPIDR's proposition classes, as UPOS
NOUNS = {"NOUN", "PROPN"}
MATTR_WINDOW = 50
LOOP_MIN_REPEATS, LOOP_MIN_TOKENS, LOOP_MAX_PERIOD = 3, 6, 25
CACHE_SIZE = 4096  # parses kept per process: far more than one chunk of records
DISCOURSE_TASKS = ("dreams", "cookie_theft")  # free production; an IQ answer is a word or a number


@dataclass
class Parse:
    """What the metrics read from one spaCy Doc: its words, and the words of each sentence."""

    words: list  # spaCy Tokens
    sentences: list[list]  # words of each sentence that has one
    sentence_texts: list[str]
    tokens: list[str] = field(default_factory=list)  # every non-whitespace token, lower-cased (loop flag)


_PARSES: OrderedDict[str, Parse] = OrderedDict()  # per process, so the metrics of a record share a parse


def _is_word(token) -> bool:
    return not (token.is_punct or token.is_space or token.pos_ in NOT_WORDS)


def _build(doc) -> Parse:
    sentences = [[t for t in sentence if _is_word(t)] for sentence in doc.sents]
    kept = [(words, sentence.text.strip()) for words, sentence in zip(sentences, doc.sents, strict=True) if words]
    return Parse(words=[t for t in doc if _is_word(t)], sentences=[w for w, _ in kept],
                 sentence_texts=[text for _, text in kept], tokens=[t.lower_ for t in doc if not t.is_space])


def _remember(text: str, parsed: Parse) -> Parse:
    _PARSES[text] = parsed
    if len(_PARSES) > CACHE_SIZE:
        _PARSES.popitem(last=False)
    return parsed


def parse(text: str) -> Parse:
    """The cached parse of `text` (parsed now if it is not cached)."""
    if text in _PARSES:
        _PARSES.move_to_end(text)
        return _PARSES[text]
    return _remember(text, _build(spacy_pipeline()(text, disable=NO_NER)))


def prepare(texts: list[str]) -> None:
    """Parse the texts that are not cached yet in one `nlp.pipe` stream."""
    new = list(dict.fromkeys(text for text in texts if text not in _PARSES))
    for text, doc in zip(new, spacy_pipeline().pipe(new, batch_size=64, disable=NO_NER), strict=True):
        _remember(text, _build(doc))


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _count(words: list, classes: set[str]) -> int:
    return sum(token.pos_ in classes for token in words)


def type_lemma_ratio(text: str) -> float | None:
    """|distinct lower-cased lemmas| / words."""
    words = parse(text).words
    return _share(len({t.lemma_.lower() for t in words}), len(words))


def mattr(text: str, window: int = MATTR_WINDOW) -> float | None:
    """Moving-average type-token ratio: mean over every `window`-word window of |types| / window.

    A text shorter than the window has one (shorter) window: its plain type-token ratio."""
    forms = [t.lower_ for t in parse(text).words]
    if len(forms) <= window:
        return _share(len(set(forms)), len(forms))
    counts = Counter(forms[:window])
    ratios = [len(counts) / window]
    for leaving, entering in zip(forms, forms[window:], strict=False):
        counts[leaving] -= 1
        if not counts[leaving]:
            del counts[leaving]
        counts[entering] += 1
        ratios.append(len(counts) / window)
    return statistics.fmean(ratios)


def lexical_density(text: str) -> float | None:
    """Content words (NOUN, PROPN, VERB, ADJ, ADV) / words; auxiliaries are function words."""
    words = parse(text).words
    return _share(_count(words, CONTENT), len(words))


def mean_zipf(text: str) -> float | None:
    """Mean Zipf frequency (wordfreq, English) of the lemmas of alphabetic words known to wordfreq.

    Zipf = log10(frequency per billion words); non-words (Zipf 0) are left to `nonword_rate`, so the
    two metrics do not count the same failure twice."""
    zipfs = [zipf_frequency(t.lemma_.lower(), "en") for t in parse(text).words if t.is_alpha]
    known = [z for z in zipfs if z > 0]
    return statistics.fmean(known) if known else None


def _may_be_a_name(token) -> bool:
    # spaCy's small model tags many lower-case words of broken text PROPN ("apple banana"), so only a
    # capitalised PROPN is taken for a name that wordfreq may not know.
    return token.pos_ == "PROPN" and (token.is_title or token.is_upper)


def nonword_rate(text: str) -> float | None:
    """Non-words / words: a non-word has Zipf 0 in wordfreq and is neither a capitalised proper noun nor number-like."""
    words = parse(text).words
    candidates = [t for t in words if not _may_be_a_name(t) and not t.like_num]
    return _share(sum(zipf_frequency(t.lower_, "en") == 0 for t in candidates), len(words))


@functools.lru_cache(maxsize=65536)
def noun_depth(lemma: str) -> int | None:
    """WordNet min_depth of the lemma's first (most frequent) noun sense; None if WordNet lacks it or the data."""
    reader = wordnet()
    synsets = reader.synsets(lemma, pos=reader.NOUN) if reader is not None else []
    return synsets[0].min_depth() if synsets else None


def wordnet_depth(text: str) -> float | None:
    """Mean WordNet depth (hypernym steps from `entity`) of the nouns' lemmas: how specific the nouns are.

    Nouns only: adjectives and adverbs have no hypernym tree and verb trees are shallow, so mixing
    them would measure the part-of-speech mix rather than specificity."""
    depths = [noun_depth(t.lemma_.lower()) for t in parse(text).words if t.pos_ == "NOUN"]
    known = [d for d in depths if d is not None]
    return statistics.fmean(known) if known else None


def sentence_similarity(text: str) -> float | None:
    """Mean cosine of consecutive sentences' MiniLM embeddings; None under two sentences.

    The sentences of one output are encoded together and alone, so a value depends on its text only,
    not on the other records of a batch (batch padding changes float sums)."""
    sentences = parse(text).sentence_texts
    if len(sentences) < 2:
        return None
    with encoder_threads():
        vectors = sentence_encoder().encode(sentences, normalize_embeddings=True).astype(np.float64)
    return float(np.mean(np.sum(vectors[:-1] * vectors[1:], axis=1)))


def mean_sentence_length(text: str) -> float | None:
    """Words / sentences."""
    parsed = parse(text)
    return _share(len(parsed.words), len(parsed.sentences))


def noun_verb_proportion(text: str) -> float | None:
    """Nouns (NOUN, PROPN) / (nouns + lexical verbs): the bounded form of the noun-verb ratio N/V = p/(1-p)."""
    words = parse(text).words
    nouns, verbs = _count(words, NOUNS), _count(words, {"VERB"})
    return _share(nouns, nouns + verbs)


def pronoun_proportion(text: str) -> float | None:
    """Pronouns / (pronouns + nouns): how much of the reference is made with pronouns."""
    words = parse(text).words
    pronouns = _count(words, {"PRON"})
    return _share(pronouns, pronouns + _count(words, NOUNS))


def closed_class_proportion(text: str) -> float | None:
    """Closed-class words / (open + closed): the bounded form of the open/closed ratio (open/closed = (1-p)/p)."""
    words = parse(text).words
    closed = _count(words, CLOSED_CLASS)
    return _share(closed, closed + _count(words, OPEN_CLASS))


def idea_density(text: str) -> float | None:
    """Propositions / words, propositions approximated by UPOS (VERB, ADJ, ADV, ADP, CCONJ, SCONJ).

    A part-of-speech approximation in the manner of CPIDR (Brown et al. 2008), without CPIDR's ~40
    readjustment rules (e.g. CPIDR counts "not" and some auxiliaries; this does not)."""
    words = parse(text).words
    return _share(_count(words, PROPOSITIONS), len(words))


def ends_in_loop(tokens: list[str]) -> bool:
    """The last tokens repeat a period p (1 <= p <= 25) at least 3 times and cover at least 6 tokens."""
    for period in range(1, LOOP_MAX_PERIOD + 1):
        span = max(LOOP_MIN_REPEATS * period, LOOP_MIN_TOKENS)
        if span > len(tokens):
            return False
        tail = tokens[-span:]
        if all(a == b for a, b in zip(tail, tail[period:], strict=False)):
            return True
    return False


def loop_flag(text: str) -> float:
    """1.0 when the output ends inside a repetition loop (`ends_in_loop` on its non-whitespace tokens)."""
    return float(ends_in_loop(parse(text).tokens))


def _on_output(function):
    """A record -> value function from a text -> value one."""
    return lambda record: function(record.get("output") or "")


_DISCOURSE = [  # name, function, low, high, higher_is_healthier, reference
    ("type_lemma_ratio", type_lemma_ratio, 0, 1, True, "thesis: distinct lemmas / words (spaCy)"),
    ("mattr_50", mattr, 0, 1, True, "Covington & McFall 2010, MATTR, 50-word window"),
    ("lexical_density", lexical_density, 0, 1, None, "thesis; Ure 1971: content words / words"),
    ("zipf_frequency", mean_zipf, 0, 8, False, "thesis; van Heuven et al. 2014 Zipf scale (wordfreq)"),
    ("wordnet_depth", wordnet_depth, 0, 20, True, "thesis; Miller 1995 WordNet 3.0 noun min_depth (nltk)"),
    ("sentence_similarity", sentence_similarity, -1, 1, None, "thesis; Reimers & Gurevych 2019, all-MiniLM-L6-v2"),
    ("mean_sentence_length", mean_sentence_length, 0, None, None, "Saffran et al. 1989 (QPA): words / sentence"),
    ("noun_verb_proportion", noun_verb_proportion, 0, 1, None, "Saffran et al. 1989 (QPA): N / (N + V)"),
    ("pronoun_proportion", pronoun_proportion, 0, 1, False, "Fraser et al. 2016: pronouns / (pronouns + nouns)"),
    ("closed_class_proportion", closed_class_proportion, 0, 1, None, "Saffran et al. 1989 (QPA): closed / words"),
    ("idea_density", idea_density, 0, 1, True, "Brown et al. 2008 (CPIDR), POS approximation; Snowdon 1996"),
    ("nonword_rate", nonword_rate, 0, 1, False, "non-words / words (wordfreq Zipf 0, not PROPN/number)"),
]

for _name, _function, _low, _high, _healthier, _reference in _DISCOURSE:
    register(Metric(_name, _on_output(_function), _low, _high, _healthier, _reference, tasks=DISCOURSE_TASKS,
                    family="discourse"))
# A loop is a failure of any task, an IQ answer included.
register(Metric("loop_flag", _on_output(loop_flag), 0, 1, False, "degrader: output ends in a repeated n-gram "
                "loop (Holtzman et al. 2020, degeneration)", family="discourse"))
