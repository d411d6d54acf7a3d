"""The statistics on synthetic frames with known effects: hand-worked d, thresholds, trends and intervals."""

import math

import numpy as np
import pandas as pd
import pytest

import analysis.metrics  # noqa: F401  (registers distinct_1, repetition, tokens: their directions are used)
from analysis.statistics import (
    bootstrap_interval,
    cohens_d,
    damage_coordinate,
    level_at,
    level_stats,
    spearman_table,
    threshold,
    trend_stats,
    vulnerability_table,
)


def frame_of(values: dict[float, list[list[float]]], metric: str = "repetition", method: str = "mult_gauss",
             task: str = "dreams") -> pd.DataFrame:
    """A per-record frame: values[level][repetition] = the metric of each prompt of that repetition."""
    rows = [{"key": f"{level}-{rep}-{prompt}", "model_name": "m", "prompt_group": task, "degradation_method": method,
             "param_group_name": "attn_only", "level_value": level, "repeat_index": rep, "prompt_id": prompt,
             "prompt_category": "c", metric: value}
            for level, reps in values.items() for rep, prompts in enumerate(reps)
            for prompt, value in enumerate(prompts)]
    return pd.DataFrame(rows)


# Repetition means 1, 2, 3 at the control (SD 1); +0.5 and +1 at the two levels: d = 0.5 and 1.0 by hand.
# Each repetition's two prompts straddle its mean, so pooling records instead of repetitions changes d.
HAND = {0.0: [[0.5, 1.5], [1.5, 2.5], [2.5, 3.5]], 0.5: [[1, 2], [2, 3], [3, 4]],
        1.0: [[1.5, 2.5], [2.5, 3.5], [3.5, 4.5]]}


def test_cohens_d_and_threshold_by_hand():
    levels = level_stats(frame_of(HAND), n_resamples=999)
    assert list(levels["level_value"]) == [0.0, 0.5, 1.0]
    assert list(levels["mean"]) == [2.0, 2.5, 3.0]
    assert levels["d"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert list(levels["n_records"]) == [6, 6, 6] and list(levels["n_repetitions"]) == [3, 3, 3]
    trends = trend_stats(frame_of(HAND), levels)
    # repetition: lower is healthier, so a rise is the unhealthy effect; 0.5 + (0.8 - 0.5) / (1.0 - 0.5) * 0.5
    assert trends["threshold"].iloc[0] == pytest.approx(0.8) and trends["threshold_found"].iloc[0] == "interpolated"
    records = level_stats(frame_of(HAND), n_resamples=999, d_unit="record")
    # records at the control: 0.5 .. 3.5, SD sqrt(1.1); difference 0.5: d = 0.5 / sqrt(1.1)
    assert records["d"].iloc[1] == pytest.approx(0.5 / math.sqrt(1.1))


def test_the_same_rise_is_healthy_for_distinct_and_never_crosses():
    trends = trend_stats(frame_of(HAND, "distinct_1"), level_stats(frame_of(HAND, "distinct_1"), n_resamples=999))
    assert trends["threshold_found"].iloc[0] == "not reached"  # distinct_1 rising is not damage
    # one-sided toward a fall: a rise gives p > 0.5, whatever its size
    assert trends["spearman_rho"].iloc[0] > 0 and trends["spearman_p"].iloc[0] > 0.5


def test_simulated_crossing_matches_a_hand_computation():
    rng = np.random.default_rng(20261127)
    # repetition SD sqrt(0.1^2 + 0.05^2 / 4) = 0.103: true d 0, 0, 1.94, 3.88, so the crossing is in 0.1 .. 0.2
    drop = {0.0: 0.0, 0.1: 0.0, 0.2: 0.2, 0.3: 0.4}
    values = {level: [list(0.8 - shift + rng.normal(0, 0.1) + rng.normal(0, 0.05, 4)) for _ in range(30)]
              for level, shift in drop.items()}
    levels = level_stats(frame_of(values, "distinct_1"), n_resamples=999)
    means = {lv: np.array([np.mean(r) for r in reps]) for lv, reps in values.items()}
    pooled = {lv: math.sqrt((np.var(means[lv], ddof=1) + np.var(means[0.0], ddof=1)) / 2) for lv in means}
    by_hand = {lv: (means[lv].mean() - means[0.0].mean()) / pooled[lv] for lv in means}
    assert levels["d"].tolist() == pytest.approx([by_hand[lv] for lv in drop])
    e1, e2 = -by_hand[0.1], -by_hand[0.2]  # distinct_1: a fall is the unhealthy effect
    expected = 0.1 + (0.8 - e1) / (e2 - e1) * 0.1
    trends = trend_stats(frame_of(values, "distinct_1"), levels)
    print(f"\nsimulated d: {[round(float(by_hand[lv]), 3) for lv in drop]}; "
          f"threshold {trends['threshold'].iloc[0]:.4f} "
          f"(hand {expected:.4f}, true 0.1 + 0.8 / 1.94 * 0.1 = {0.1 + 0.8 / 1.94 * 0.1:.4f}); "
          f"Spearman rho {trends['spearman_rho'].iloc[0]:.3f}, one-sided p {trends['spearman_p'].iloc[0]:.2e}")
    assert 0.1 < expected < 0.2
    assert trends["threshold"].iloc[0] == pytest.approx(expected)
    assert trends["spearman_rho"].iloc[0] < 0 and trends["spearman_p"].iloc[0] < 1e-6


def test_spearman_direction_follows_the_registry():
    falling = {level: [[3 - level + 0.1 * rep] for rep in range(4)] for level in (0.0, 0.5, 1.0, 1.5)}
    p = {metric: trend_stats(frame_of(falling, metric), level_stats(frame_of(falling, metric), n_resamples=99))
         ["spearman_p"].iloc[0] for metric in ("distinct_1", "repetition", "tokens")}
    print(f"\none-sided Spearman p of a falling metric: { {k: float(v) for k, v in p.items()} }")
    assert p["distinct_1"] < 0.001  # higher is healthier: a fall is the tested direction ("less")
    assert p["repetition"] > 0.99  # lower is healthier: the test looks for a rise ("greater")
    assert 2 * p["distinct_1"] == pytest.approx(p["tokens"])  # no direction: two-sided


def test_uni_quant_damage_order_and_log2_interpolation():
    order = sorted([4, 1024, 0, 64, 16], key=lambda n: damage_coordinate("uni_quant", n))
    assert order == [0, 1024, 64, 16, 4]  # the control first, then damage grows as N falls
    assert (damage_coordinate("mult_gauss", 0.7) == 0.7
            and level_at("uni_quant", damage_coordinate("uni_quant", 48)) == 48)
    # crossing between N 64 (e 0.4) and 16 (e 1.2): halfway on log2 N (6 .. 4) is N = 32, not 40
    assert threshold("uni_quant", [0, 64, 16, 4], [0.0, 0.4, 1.2, 3.0]) == (pytest.approx(32), "interpolated")
    # reached at the first quantised level: the control has no log2 N to interpolate from
    assert threshold("uni_quant", [0, 1024, 64], [0.0, 2.0, 3.0]) == (1024, "at or before this level")
    # a control without an effect size (one repetition): nothing below the crossing to interpolate from
    assert threshold("mult_gauss", [0.0, 0.5, 1.0], [math.nan, 1.0, 2.0]) == (0.5, "at or before this level")
    assert threshold("mult_gauss", [0.0, 0.5, 1.0], [0.0, 0.4, math.inf]) == (1.0, "at or before this level")
    assert threshold("ablation", [0.0, 0.2, 0.4], [0.0, 0.2, 0.5]) == (pytest.approx(float("nan"), nan_ok=True),
                                                                        "not reached")


def test_uni_quant_frame_is_ordered_by_damage_and_tabled():
    rng = np.random.default_rng(7)
    shift = {0: 0.0, 1024: 0.0, 256: 0.0, 64: 0.05, 16: 0.2}  # true d 0, 0, 0, 2.5, 10: crossing in 256 .. 64
    values = {n: [[1 + s + rng.normal(0, 0.02)] for _ in range(20)] for n, s in shift.items()}
    frame = frame_of(values, "repetition", "uni_quant")
    levels = level_stats(frame, n_resamples=999)
    assert list(levels["level_value"]) == [0, 1024, 256, 64, 16]
    trends = trend_stats(frame, levels)
    assert 64 < trends["threshold"].iloc[0] < 256
    cell = vulnerability_table(trends).loc["repetition", "dreams uni_quant attn_only (N values)"]
    assert cell == f"{trends['threshold'].iloc[0]:.3g}"
    assert spearman_table(trends).loc["repetition", "dreams uni_quant attn_only"] < 0.001


def test_interval_covers_the_true_mean_in_a_seeded_simulation():
    rng = np.random.default_rng(1)
    hits = {5: 0, 10: 0, 30: 0}
    for n in hits:
        for trial in range(200):
            low, high, _ = bootstrap_interval(rng.normal(3.0, 1.0, n), np.random.default_rng(trial), 1999)
            hits[n] += low <= 3.0 <= high
    coverage = {n: h / 200 for n, h in hits.items()}
    print(f"\n95 % BCa interval coverage of the true mean, 200 simulated experiments: {coverage}")
    assert coverage[10] >= 0.85 and coverage[30] >= 0.9


def test_too_few_repetitions_or_no_control_are_said():
    one_rep = level_stats(frame_of({0.0: [[1.0, 2.0]], 0.5: [[3.0, 4.0]]}), n_resamples=99)
    assert one_rep["ci_low"].isna().all() and "fewer than 2 repetitions" in one_rep["note"].iloc[0]
    no_control = level_stats(frame_of({0.5: [[1.0], [2.0]], 1.0: [[3.0], [4.0]]}), n_resamples=99)
    assert no_control["d"].isna().all() and "no control level" in no_control["note"].iloc[0]
    trends = trend_stats(frame_of({0.5: [[1.0], [2.0]], 1.0: [[3.0], [4.0]]}), no_control)
    assert trends["threshold_found"].iloc[0].startswith("no effect size")
    assert vulnerability_table(trends).iloc[0, 0].startswith("no effect size")


def test_cohens_d_edge_cases():
    assert cohens_d(np.array([2.0, 2.0]), np.array([1.0, 1.0])) == math.inf  # complete separation
    assert cohens_d(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.0
    assert math.isnan(cohens_d(np.array([1.0]), np.array([2.0])))
    with pytest.raises(ValueError, match="record, repetition|repetition, record"):
        level_stats(frame_of(HAND), d_unit="prompt")


def test_intervals_are_reproducible_per_cell():
    first = level_stats(frame_of(HAND), n_resamples=999, seed=3)
    again = level_stats(frame_of(HAND), n_resamples=999, seed=3)
    other = level_stats(frame_of(HAND), n_resamples=999, seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert not first["ci_low"].equals(other["ci_low"])
    assert (first["ci_low"] <= first["mean"]).all() and (first["mean"] <= first["ci_high"]).all()
