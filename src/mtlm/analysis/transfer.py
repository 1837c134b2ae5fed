"""Whether multi-task training helped a task, on plain numbers: Δm and a seed-noise test.

Δm is the mean relative change of each task's metric from its single-task baseline, with the
sign flipped where lower is better (Maninis, Radosavovic and Kokkinos, 2019, "Attentive
Single-Tasking of Multiple Tasks"). Whether a difference exceeds seed noise is Welch's
t-test, which does not assume the two models vary as much from seed to seed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from scipy.stats import ttest_ind

#: The significance level of the seed-noise test.
ALPHA = 0.05
SEED_TEST = f"Welch's t-test (scipy.stats.ttest_ind, equal_var=False), p < {ALPHA}"


class DeltaM(NamedTuple):
    """Δm in percent (None when no task can count) and the tasks left out of it."""

    value: float | None
    left_out: list[str]


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
