"""IQ accuracy per cell of the design, with an interval and a chance baseline (docs/analysis.md).

A cell is (model_name, settings_hash, prompt_group, degradation_method, param_group_name, level_value,
prompt_category): records of other models or settings are never pooled.
accuracy = mean over repetitions of the repetition's share of right answers: the repetition (one
lesion draw) is the unit of replication, not the output, because outputs of one draw share its lesion.
interval: percentile bootstrap of that mean over the repetition means (scipy.stats.bootstrap), or a
Wilson interval over the outputs when the cell has a single repetition (the `interval` column says which).
chance: the same outputs scored against the cell's keys permuted among its items (every repetition of
an item gets the same permuted key), mean over permutations; chance_low/high = 2.5/97.5 percentiles.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from analysis.answers import score_answer
from analysis.statistics import cell_rng

logger = logging.getLogger(__name__)

# model and settings hash too: records of other models, settings or the original pipeline are never pooled
CELL_FIELDS = ("model_name", "settings_hash", "prompt_group", "degradation_method", "param_group_name", "level_value",
               "prompt_category")
COLUMNS = (*CELL_FIELDS, "n", "repetitions", "items", "accuracy", "ci_low", "ci_high", "interval",
           "chance", "chance_low", "chance_high")
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999


def category_accuracy(records: list[dict], seed: int = 0, permutations: int = 200) -> pd.DataFrame:
    """One row per cell of the keyed records: n, accuracy, its 95 % interval, the chance baseline."""
    if permutations < 1:
        raise ValueError(f"permutations={permutations}; the chance baseline needs at least 1")
    scored = _keyed_frame(records)
    logger.info("IQ accuracy: %d keyed records, seed %d, %d permutations", len(scored), seed, permutations)
    # one generator per cell, a pure function of (seed, cell): adding a file changes no other cell's figures
    rows = [_cell_row(cell, cell_rng(seed, key), permutations)
            for key, cell in scored.groupby(list(CELL_FIELDS), sort=True, dropna=False)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _keyed_frame(records: list[dict]) -> pd.DataFrame:
    """The records that carry an answer key (no key: not scored, not counted)."""
    rows = [{**{field: record.get(field, "") for field in CELL_FIELDS}, "repeat_index": record["repeat_index"],
             "item": record.get("prompt_id", record.get("prompt_text")), "prompt": record.get("prompt_text", ""),
             "output": record.get("output", ""), "key": record["answer_key"]}
            for record in records if record.get("answer_key")]
    return pd.DataFrame(rows, columns=[*CELL_FIELDS, "repeat_index", "item", "prompt", "output", "key"])


def _cell_row(cell: pd.DataFrame, rng: np.random.Generator, permutations: int) -> dict:
    """The row of one cell."""
    verdicts = _Verdicts()
    right = np.array([verdicts(o, k, p) for o, k, p in zip(cell["output"], cell["key"], cell["prompt"], strict=True)])
    accuracy = repetition_mean(cell["repeat_index"].to_numpy(), right)
    low, high, method = _interval(cell["repeat_index"].to_numpy(), right, rng)
    chance = _chance(cell, verdicts, rng, permutations)
    return {**dict(zip(CELL_FIELDS, cell.iloc[0][list(CELL_FIELDS)], strict=True)), "n": len(cell),
            "repetitions": cell["repeat_index"].nunique(), "items": cell["item"].nunique(),
            "accuracy": accuracy, "ci_low": low, "ci_high": high, "interval": method,
            "chance": float(np.mean(chance)), "chance_low": float(np.percentile(chance, 2.5)),
            "chance_high": float(np.percentile(chance, 97.5))}


def repetition_means(repeats: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The share of right answers within each repetition, in repetition order."""
    return np.array([right[repeats == rep].mean() for rep in np.unique(repeats)])


def repetition_mean(repeats: np.ndarray, right: np.ndarray) -> float:
    """Accuracy with every repetition weighted equally."""
    return float(repetition_means(repeats, right).mean())


def _interval(repeats: np.ndarray, right: np.ndarray, rng: np.random.Generator) -> tuple[float, float, str]:
    """95 % interval: bootstrap over repetition means, or Wilson over outputs with one repetition."""
    means = repetition_means(repeats, right)
    if len(means) < 2:
        ci = stats.binomtest(int(right.sum()), len(right)).proportion_ci(CONFIDENCE, method="wilson")
        return float(ci.low), float(ci.high), "wilson (1 repetition)"
    # percentile, not BCa: BCa is undefined when every repetition has the same accuracy (common at 0 or 1)
    result = stats.bootstrap((means,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE,
                             method="percentile", rng=rng)
    ci = result.confidence_interval
    return float(ci.low), float(ci.high), f"bootstrap over {len(means)} repetitions"


def _chance(cell: pd.DataFrame, verdicts: _Verdicts, rng: np.random.Generator, permutations: int) -> np.ndarray:
    """Cell accuracy under `permutations` permutations of the keys among the cell's items."""
    items = cell.drop_duplicates("item")[["item", "key"]]
    repeats = cell["repeat_index"].to_numpy()
    accuracies = np.empty(permutations)
    for index in range(permutations):
        shuffled = dict(zip(items["item"], rng.permutation(items["key"].to_numpy()), strict=True))
        right = np.array([verdicts(o, shuffled[i], p)
                          for o, i, p in zip(cell["output"], cell["item"], cell["prompt"], strict=True)])
        accuracies[index] = repetition_mean(repeats, right)
    return accuracies


class _Verdicts:
    """score_answer memoised on (output, key, prompt): permutations revisit the same pairs many times."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], bool] = {}

    def __call__(self, output: str, key: str, prompt: str) -> bool:
        if (output, key, prompt) not in self._seen:
            self._seen[(output, key, prompt)] = bool(score_answer(output, key, prompt))
        return self._seen[(output, key, prompt)]
