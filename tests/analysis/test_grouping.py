"""Task grouping: the exhaustive search finds the partition a brute force over label
assignments finds, the greedy search stays valid and good above its size limit, and impossible
group counts are refused naming `--groups`."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from mtlm import ConfigError
from mtlm.analysis.grouping import (
    EXHAUSTIVE_MAX_TASKS,
    best_partition,
    group_score,
    partition_score,
)


def score_by_definition(affinity: np.ndarray, labels: tuple[int, ...]) -> float:
    """Σ over groups Σ over members j of the mean affinity onto j from the other members."""
    total = 0.0
    for label in set(labels):
        members = [task for task, given in enumerate(labels) if given == label]
        for j in members:
            others = [affinity[i][j] for i in members if i != j]
            total += sum(others) / len(others) if others else 0.0
    return total


def brute_force(affinity: np.ndarray, groups: int) -> tuple[float, list[list[int]]]:
    """The best score over every assignment of a group label to each task using all labels."""
    tasks = len(affinity)
    best_score, best_labels = -np.inf, None
    for labels in itertools.product(range(groups), repeat=tasks):
        if len(set(labels)) == groups:
            score = score_by_definition(affinity, labels)
            if score > best_score:
                best_score, best_labels = score, labels
    partition = [[t for t in range(tasks) if best_labels[t] == g] for g in set(best_labels)]
    return best_score, sorted(partition)


def is_partition(groups: list[list[int]], tasks: int, count: int) -> bool:
    return len(groups) == count and all(groups) and sorted(sum(groups, [])) == list(range(tasks))


def block_matrix(sizes: list[int], seed: int) -> np.ndarray:
    """Affinities around +1 within blocks of consecutive tasks and around −0.5 across them,
    with noise far smaller than the gap, and tasks shuffled so blocks are not contiguous."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(labels)
    same = labels[:, None] == labels[None, :]
    return np.where(same, 1.0, -0.5) + rng.normal(0, 0.1, (len(labels), len(labels)))


@pytest.mark.parametrize("tasks", [4, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exhaustive_search_finds_the_brute_force_optimum(tasks, seed):
    affinity = np.random.default_rng(seed).normal(size=(tasks, tasks))
    for groups in range(1, tasks + 1):
        expected_score, expected = brute_force(affinity, groups)
        found = best_partition(affinity, groups)
        assert found.exhaustive
        assert is_partition(found.groups, tasks, groups)
        assert found.score == pytest.approx(expected_score)
        assert found.groups == expected  # random affinities leave no ties


def test_a_pair_counts_both_directions_of_its_affinity():
    # 0 helps 1 a lot and 1 hurts 0 a little: together 3 − 1 = 2, better than apart (0).
    # 2 helps 3 a little and 3 hurts 2 a lot: together 1 − 2 = −1, worse than apart.
    affinity = np.zeros((4, 4))
    affinity[0, 1], affinity[1, 0] = 3.0, -1.0
    affinity[2, 3], affinity[3, 2] = 1.0, -2.0
    assert group_score(affinity, [0, 1]) == 2.0
    assert group_score(affinity, [2, 3]) == -1.0
    found = best_partition(affinity, 3)
    assert found.groups == [[0, 1], [2], [3]]
    assert found.score == 2.0


def test_a_group_scores_the_mean_affinity_onto_each_member_not_the_pair_count():
    affinity = np.full((3, 3), 0.5)
    # Each member gets the mean 0.5 from the others: 1.5, not the 6 × 0.5 = 3 of a pair sum.
    assert group_score(affinity, [0, 1, 2]) == pytest.approx(1.5)
    assert group_score(affinity, [2]) == 0.0
    assert partition_score(affinity, [[0, 1], [2]]) == pytest.approx(1.0)


def test_one_group_and_one_group_per_task_are_the_only_partitions_of_those_sizes():
    affinity = np.random.default_rng(3).normal(size=(6, 6))
    whole = best_partition(affinity, 1)
    assert whole.groups == [list(range(6))]
    assert whole.score == pytest.approx(group_score(affinity, range(6)))
    alone = best_partition(affinity, 6)
    assert alone.groups == [[task] for task in range(6)]
    assert alone.score == 0.0


@pytest.mark.parametrize("groups", [2, 3])
def test_greedy_search_recovers_clear_blocks_of_ten_tasks(groups):
    sizes = [4, 6] if groups == 2 else [3, 3, 4]
    affinity = block_matrix(sizes, seed=groups)
    assert len(affinity) > EXHAUSTIVE_MAX_TASKS
    expected_score, expected = brute_force(affinity, groups)
    found = best_partition(affinity, groups)
    assert not found.exhaustive
    assert found.groups == expected
    assert found.score == pytest.approx(expected_score)


@pytest.mark.parametrize("seed", range(5))
def test_greedy_search_on_noise_is_a_valid_local_optimum_beating_random_partitions(seed):
    tasks, groups = 12, 4
    affinity = np.random.default_rng(seed).normal(size=(tasks, tasks))
    found = best_partition(affinity, groups)
    assert not found.exhaustive
    assert is_partition(found.groups, tasks, groups)
    assert found.score == pytest.approx(partition_score(affinity, found.groups))
    # No single task can change group (leaving none empty) for a better score.
    for source, group in enumerate(found.groups):
        for task in group if len(group) > 1 else []:
            for target in range(groups):
                if target != source:
                    moved = [[t for t in g if t != task] for g in found.groups]
                    moved[target].append(task)
                    assert partition_score(affinity, moved) <= found.score + 1e-9
    rng = random.Random(seed)
    for _ in range(200):
        labels = list(range(groups)) + [rng.randrange(groups) for _ in range(tasks - groups)]
        rng.shuffle(labels)
        assert score_by_definition(affinity, tuple(labels)) <= found.score + 1e-9


@pytest.mark.parametrize("groups", [0, -1, 5])
def test_impossible_group_counts_name_the_flag(groups):
    with pytest.raises(ConfigError, match="--groups"):
        best_partition(np.zeros((4, 4)), groups)
