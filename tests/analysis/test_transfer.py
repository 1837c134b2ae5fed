"""Δm, Δn, the seed-noise test and the learned rule on hand-made numbers."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

from mtlm.analysis.transfer import (
    ALPHA,
    delta_m,
    delta_n,
    learned,
    mean_std,
    normalised_score,
    relative_change,
    seed_test,
)


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


def test_delta_n_averages_the_change_on_the_trivial_to_ideal_scale():
    single = {"sentiment": 0.80, "score_mse": 0.40, "score_pearson": 0.01, "tagging": 0.90}
    multi = {"sentiment": 0.85, "score_mse": 0.50, "score_pearson": 0.03, "tagging": 0.95}
    trivial = {"sentiment": 0.50, "score_mse": 1.00, "score_pearson": 0.00, "tagging": None}
    ideal = {"sentiment": 1.0, "score_mse": 0.0, "score_pearson": 1.0, "tagging": 1.0}
    # sentiment: 60 -> 70 points; mse (lower is better, trivial 1, ideal 0): 60 -> 50;
    # pearson: 1 -> 3 points; tagging has no trivial score and is left out.
    expected = (10.0 - 10.0 + 2.0) / 3
    result = delta_n(single, multi, trivial, ideal)
    assert result.value == pytest.approx(expected)
    assert result.left_out == ["tagging"]
    assert normalised_score(0.40, 1.00, 0.0) == pytest.approx(60.0)
    # The same pearson change is +200 % in Δm: a near-zero baseline dominates it, not Δn.
    assert relative_change(0.01, 0.03, higher_is_better=True) == pytest.approx(200.0)


def test_no_normalised_score_where_trivial_is_already_ideal_or_not_finite():
    assert normalised_score(1.0, 1.0, 1.0) is None
    assert normalised_score(math.nan, 0.5, 1.0) is None
    nothing = delta_n({"a": 1.0}, {"a": 1.0}, {"a": 1.0}, {"a": 1.0})
    assert nothing.value is None and nothing.left_out == ["a"]


def test_one_seed_learned_a_task_above_2_points_of_the_normalised_score():
    # trivial 0.5, ideal 1: 0.505 is 1 point, 0.515 is 3 points.
    assert learned([0.505], [0.5], 1.0, higher_is_better=True) == (False, None)
    assert learned([0.515], [0.5], 1.0, higher_is_better=True) == (True, None)
    # mse, trivial 1, ideal 0: 0.99 is 1 point, 0.97 is 3 points; 1.2 is worse than trivial.
    assert not learned([0.99], [1.0], 0.0, higher_is_better=False).learned
    assert learned([0.97], [1.0], 0.0, higher_is_better=False).learned
    assert not learned([1.2], [1.0], 0.0, higher_is_better=False).learned


def test_several_seeds_learned_a_task_by_a_one_sided_t_test_against_trivial():
    # Gains over trivial 0.02, 0.10, 0.06: mean 0.06, sample std 0.04, t = 0.06 / (0.04 / √3).
    t = 0.06 / (0.04 / math.sqrt(3))
    noisy = learned([0.52, 0.60, 0.56], [0.5] * 3, 1.0, higher_is_better=True)
    assert noisy.p_value == pytest.approx(stats.t.sf(t, df=2))
    assert noisy.p_value > ALPHA and not noisy.learned  # better on average, not beyond noise
    # Gains 0.08, 0.10, 0.12: mean 0.10, sample std 0.02.
    steady = learned([0.58, 0.60, 0.62], [0.5] * 3, 1.0, higher_is_better=True)
    assert steady.p_value == pytest.approx(stats.t.sf(0.10 / (0.02 / math.sqrt(3)), df=2))
    assert steady.learned
    # Lower is better: the test is one-sided the other way.
    assert learned([0.80, 0.85, 0.75], [1.0] * 3, 0.0, higher_is_better=False).learned
    worse = learned([0.80, 0.85, 0.75], [0.5] * 3, 0.0, higher_is_better=False)
    assert not worse.learned and worse.p_value > 0.5


def test_seeds_that_do_not_vary_learned_a_task_when_every_seed_beats_trivial():
    assert learned([0.6, 0.6], [0.5, 0.5], 1.0, higher_is_better=True) == (True, None)
    assert learned([0.5, 0.5], [0.5, 0.5], 1.0, higher_is_better=True) == (False, None)
    # Each seed against its own trivial score (a max_examples draw may change it).
    assert learned([0.60, 0.70], [0.55, 0.65], 1.0, higher_is_better=True) == (True, None)
    assert learned([math.nan, 0.7], [0.5, 0.5], 1.0, higher_is_better=True) == (False, None)
