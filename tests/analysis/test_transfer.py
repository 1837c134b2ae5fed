"""Δm and the seed-noise test on hand-made numbers."""

from __future__ import annotations

import statistics

import pytest
from scipy import stats

from mtlm.analysis.transfer import ALPHA, delta_m, mean_std, relative_change, seed_test


def test_delta_m_flips_lower_is_better_and_divides_by_the_baseline_magnitude():
    single = {"sentiment": 0.80, "score_mse": 0.50, "score_pearson": -0.20}
    multi = {"sentiment": 0.84, "score_mse": 0.60, "score_pearson": 0.10}
    higher = {"sentiment": True, "score_mse": False, "score_pearson": True}
    # The formula of Maninis et al. (2019), written out term by term.
    expected = (
        100
        / 3
        * (
            (0.84 - 0.80) / 0.80  # higher is better: +5 %
            - (0.60 - 0.50) / 0.50  # mse rose: −20 %
            + (0.10 - (-0.20)) / abs(-0.20)  # a negative baseline still counts up: +150 %
        )
    )
    result = delta_m(single, multi, higher)
    assert result.value == pytest.approx(expected)
    assert result.left_out == []
    assert relative_change(0.50, 0.60, higher_is_better=False) == pytest.approx(-20.0)
    assert relative_change(-0.20, 0.10, higher_is_better=True) == pytest.approx(150.0)


def test_a_zero_baseline_is_left_out_of_delta_m():
    result = delta_m({"a": 0.5, "b": 0.0}, {"a": 0.6, "b": 0.3}, {"a": True, "b": True})
    assert result.value == pytest.approx(100 * (0.6 - 0.5) / 0.5)
    assert result.left_out == ["b"]
    nothing = delta_m({"b": 0.0}, {"b": 0.3}, {"b": True})
    assert nothing.value is None and nothing.left_out == ["b"]


def test_mean_std_is_the_sample_standard_deviation():
    values = [0.70, 0.74, 0.69]
    mean, std = mean_std(values)
    assert mean == pytest.approx(statistics.fmean(values))
    assert std == pytest.approx(statistics.stdev(values))
    assert mean_std([0.7]) == (0.7, None)


def test_a_clear_difference_exceeds_seed_noise():
    single = [0.70, 0.71, 0.69]
    multi = [0.80, 0.82, 0.79]
    result = seed_test(single, multi)
    assert result.significant and result.p_value < ALPHA


def test_overlapping_seed_scores_are_within_noise():
    result = seed_test([0.70, 0.75, 0.65], [0.71, 0.66, 0.74])
    assert not result.significant and result.p_value > ALPHA


def test_the_seed_test_is_welchs_not_students():
    # Very unequal spreads: Welch's degrees of freedom differ from Student's n1 + n2 − 2.
    single = [0.60, 0.61, 0.60, 0.61]
    multi = [0.50, 0.75, 0.95, 0.70]
    v1, v2, n = statistics.variance(single), statistics.variance(multi), len(single)
    t = (statistics.fmean(multi) - statistics.fmean(single)) / ((v1 + v2) / n) ** 0.5
    df = (v1 / n + v2 / n) ** 2 / ((v1 / n) ** 2 / (n - 1) + (v2 / n) ** 2 / (n - 1))
    welch = 2 * stats.t.sf(abs(t), df)
    student = 2 * stats.t.sf(abs(t), 2 * n - 2)
    assert welch != pytest.approx(student, rel=1e-3)
    assert seed_test(single, multi).p_value == pytest.approx(welch)


def test_no_test_with_one_seed_or_no_variance():
    assert seed_test([0.7], [0.8]) is None
    assert seed_test([0.7, 0.7], [0.8, 0.8]) is None
