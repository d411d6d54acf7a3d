"""Text metrics of one generated output (IQ answers are scored in analysis/answers.py).

distinct-n  = |unique n-grams| / |n-grams| of the output's lower-cased words (0 when it has none);
repetition  = 1 - distinct-4: the share of 4-grams that repeat an earlier one.
"""

from __future__ import annotations

import re

from analysis.registry import Metric, register

_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")


def words(text: str) -> list[str]:
    """Lower-cased words (letters, digits, inner apostrophes and decimal points)."""
    return _WORD.findall(text.lower())


def distinct(text: str, n: int) -> float:
    """|unique n-grams| / |n-grams|, 0 when the text has fewer than n words."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition(text: str) -> float:
    """Share of 4-grams that repeat an earlier one (0 when the text has fewer than 4 words)."""
    tokens = words(text)
    return 1.0 - distinct(text, 4) if len(tokens) >= 4 else 0.0


def _empty(record: dict) -> float:
    return float(not record.get("output", "").strip())


for _metric in (
    Metric("tokens", lambda r: r.get("tokens"), 0, None, None, "new tokens of the output (degrader)"),
    Metric("empty_rate", _empty, 0, 1, False, "share of empty or whitespace outputs (degrader)"),
    Metric("distinct_1", lambda r: distinct(r.get("output", ""), 1), 0, 1, True, "Li et al. 2016, distinct-n"),
    Metric("distinct_2", lambda r: distinct(r.get("output", ""), 2), 0, 1, True, "Li et al. 2016, distinct-n"),
    Metric("repetition", lambda r: repetition(r.get("output", "")), 0, 1, False, "1 - distinct-4 (degrader)"),
    Metric("perplexity", lambda r: r.get("perplexity"), 1, None, False, "perplexity of a fixed text (thesis)"),
):
    register(_metric)
