"""Whether multi-task training helped a task, on plain numbers: Δm, Δn, a seed-noise test and
whether a model learned a task at all.

Δm is the mean relative change of each task's metric from its single-task baseline, with the
sign flipped where lower is better (Maninis, Radosavovic and Kokkinos, 2019, "Attentive
Single-Tasking of Multiple Tasks"). Whether a difference exceeds seed noise is Welch's
t-test, which does not assume the two models vary as much from seed to seed.

Δn is the mean change of the normalised score, which puts every task on the scale from its
trivial baseline (0) to its ideal score (100); see `normalised_score`. A model has learned a
task when it beats the trivial score; see `learned`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from scipy.stats import ttest_1samp, ttest_ind

#: The significance level of the seed-noise test.
ALPHA = 0.05
SEED_TEST = f"Welch's t-test (scipy.stats.ttest_ind, equal_var=False), p < {ALPHA}"
#: With one seed, a model learned a task when its normalised score exceeds this (in points).
ONE_SEED_MARGIN = 2.0
LEARNED_RULE = (
    "learned: the model beats the trivial score; with several seeds by a one-sided t-test of "
    f"the seed scores against it (scipy.stats.ttest_1samp), p < {ALPHA}; with one seed by a "
    f"normalised score above {ONE_SEED_MARGIN:g} ({ONE_SEED_MARGIN:g} % of the way from trivial "
    "to ideal)"
)


class DeltaM(NamedTuple):
    """Δm in percent (None when no task can count) and the tasks left out of it."""

    value: float | None
    left_out: list[str]


class DeltaN(NamedTuple):
    """Δn in points of the normalised score (None when no task can count) and the tasks left
    out of it."""

    value: float | None
    left_out: list[str]


class Learned(NamedTuple):
    """Whether a model beats the trivial score on a task, and the t-test's p-value (None with
    one seed or when the seeds do not vary)."""

    learned: bool
    p_value: float | None


class SeedTest(NamedTuple):
    """Welch's p-value of multi- against single-task scores, and whether it is below ALPHA."""

    p_value: float
    significant: bool


def signed_difference(single: float, multi: float, higher_is_better: bool) -> float:
    """How much better the multi-task score is: M_mt − M_st, negated where lower is better."""
    return (multi - single) if higher_is_better else (single - multi)


def relative_change(single: float, multi: float, higher_is_better: bool) -> float | None:
    """(−1)^l (M_mt − M_st) / |M_st| in percent; None when the baseline is 0 or not finite."""
    if single == 0 or not math.isfinite(single) or not math.isfinite(multi):
        return None
    return 100.0 * signed_difference(single, multi, higher_is_better) / abs(single)


def delta_m(
    single: Mapping[str, float], multi: Mapping[str, float], higher_is_better: Mapping[str, bool]
) -> DeltaM:
    """Δm over the tasks of `single`: the mean of their relative changes, in percent."""
    changes, left_out = [], []
    for task, baseline in single.items():
        change = relative_change(baseline, multi[task], higher_is_better[task])
        if change is None:
            left_out.append(task)
        else:
            changes.append(change)
    return DeltaM(statistics.fmean(changes) if changes else None, left_out)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (None for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def seed_test(single: Sequence[float], multi: Sequence[float]) -> SeedTest | None:
    """Welch's t-test of the two sets of seed scores; None with fewer than two seeds a side,
    or when neither side varies (then no noise level exists to compare with)."""
    if len(single) < 2 or len(multi) < 2:
        return None
    if statistics.pvariance(single) == 0 and statistics.pvariance(multi) == 0:
        return None
    p_value = float(ttest_ind(multi, single, equal_var=False).pvalue)
    return SeedTest(p_value, p_value < ALPHA)


def normalised_score(value: float, trivial: float, ideal: float) -> float | None:
    """n = (value − trivial) / (ideal − trivial) × 100: 0 is the trivial baseline, 100 the ideal
    score, whichever way the metric improves; None when not finite or when trivial is ideal.

    The scale is fixed by the task, not by the baseline being compared against. Δm divides by
    the single-task score, so a task whose baseline scores near zero (a Pearson r of 0.01, an
    MCC of 0.02) contributes a relative change of hundreds of percent and dominates the mean,
    and a change between two models that both score at the trivial level counts as much as any
    other. On the normalised scale a change of 0.01 between two useless models is 1 point, and
    no task can contribute more than the distance between trivial and ideal.
    """
    if not all(math.isfinite(x) for x in (value, trivial, ideal)) or ideal == trivial:
        return None
    return 100.0 * (value - trivial) / (ideal - trivial)


def normalised_change(single: float, multi: float, trivial: float, ideal: float) -> float | None:
    """n(multi) − n(single) in points; None when either has no normalised score."""
    before, after = (
        normalised_score(single, trivial, ideal),
        normalised_score(multi, trivial, ideal),
    )
    return None if before is None or after is None else after - before


def delta_n(
    single: Mapping[str, float],
    multi: Mapping[str, float],
    trivial: Mapping[str, float | None],
    ideal: Mapping[str, float],
) -> DeltaN:
    """Δn over the tasks of `single`: the mean change of their normalised scores, in points;
    a task without a trivial score (None) or without a normalised score is left out."""
    changes, left_out = [], []
    for task, baseline in single.items():
        floor = trivial.get(task)
        change = (
            None if floor is None else normalised_change(baseline, multi[task], floor, ideal[task])
        )
        if change is None:
            left_out.append(task)
        else:
            changes.append(change)
    return DeltaN(statistics.fmean(changes) if changes else None, left_out)


def learned(
    scores: Sequence[float], trivial: Sequence[float], ideal: float, higher_is_better: bool
) -> Learned:
    """Whether a model's seed scores beat the trivial scores of the same seeds (see
    LEARNED_RULE): with several seeds a one-sided one-sample t-test of score − trivial against
    0 (every seed better when the differences do not vary); with one seed a normalised score
    above ONE_SEED_MARGIN. Non-finite scores have learned nothing."""
    values = [*scores, *trivial]
    if not values or not all(math.isfinite(x) for x in values):
        return Learned(False, None)
    if len(scores) == 1:
        score = normalised_score(scores[0], trivial[0], ideal)
        return Learned(score is not None and score > ONE_SEED_MARGIN, None)
    gains = [score - floor for score, floor in zip(scores, trivial, strict=True)]
    if statistics.pvariance(gains) == 0:
        better = all(signed_difference(0.0, gain, higher_is_better) > 0 for gain in gains)
        return Learned(better, None)
    alternative = "greater" if higher_is_better else "less"
    p_value = float(ttest_1samp(gains, 0.0, alternative=alternative).pvalue)
    return Learned(p_value < ALPHA, p_value)
