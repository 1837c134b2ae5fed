"""Task grouping: split the tasks into groups that help each other most, given their affinities.

A group's score follows Fifty, Amid, Zhao, Yu, Anil & Finn (2021, "Efficiently Identifying
Task Groupings for Multi-Task Learning", NeurIPS): for each member j, the mean affinity onto j
from the group's other members, summed over the members. Averaging over the other members keeps
large groups from winning just for having more pairs; a task alone scores 0. A partition's score
is the sum of its groups' scores.

Every member's mean is over the same number of others, so a group's score is its total affinity
between distinct members divided by (size − 1): both directions of each pair count, and the
score reads the same from a matrix or its transpose. Unlike Fifty et al., who let a task sit in
several groups and pick the groups that serve each task best, the groups here are a partition:
each task trains in exactly one group (what `training.joint_groups` or separate runs need).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from mtlm.errors import ConfigError

#: Up to this many tasks every partition is scored (21,147 set partitions of 9 tasks in all);
#: above it the search is greedy.
EXHAUSTIVE_MAX_TASKS = 9

_Scorer = Callable[[Sequence[int]], float]


class Partition(NamedTuple):
    """Groups of task indices (each sorted, ordered by their first task), their score, and
    whether every partition was scored (else the greedy search found it)."""

    groups: list[list[int]]
    score: float
    exhaustive: bool


def group_score(affinity: ArrayLike, members: Sequence[int]) -> float:
    """Σ_{j in group} mean_{i in group, i ≠ j} A[i, j], with A[i, j] the affinity from task i
    onto task j; 0 for a single task."""
    matrix = np.asarray(affinity, dtype=float)
    if len(members) < 2:
        return 0.0
    block = matrix[np.ix_(members, members)]
    return float((block.sum() - np.trace(block)) / (len(members) - 1))


def partition_score(affinity: ArrayLike, groups: Sequence[Sequence[int]]) -> float:
    """The sum of the groups' `group_score`s."""
    return sum(group_score(affinity, group) for group in groups)


def check_group_count(groups: int, tasks: int) -> None:
    """Refuse a number of groups that cannot partition `tasks` tasks (names `--groups`)."""
    if not 1 <= groups <= tasks:
        raise ConfigError(
            f"--groups: {groups} groups of {tasks} tasks; give a number from 1 to {tasks}"
        )


def best_partition(affinity: ArrayLike, groups: int) -> Partition:
    """The partition of the tasks into exactly `groups` non-empty groups with the highest
    `partition_score`; `affinity` is T×T, row i = from task i, column j = onto task j.

    Up to `EXHAUSTIVE_MAX_TASKS` tasks every partition is scored, so the result is optimal
    (ties go to the first partition found). Above, the search is greedy: start from single
    tasks, merge the two groups whose merge scores best until `groups` remain, then move single
    tasks between groups while a move raises the score. That result is a local optimum (no
    single task can change group for a better score), not necessarily the best partition.
    """
    matrix = np.asarray(affinity, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"affinity must be a square matrix, got shape {matrix.shape}")
    tasks = matrix.shape[0]
    check_group_count(groups, tasks)
    scores: dict[tuple[int, ...], float] = {}

    def score(group: Sequence[int]) -> float:
        key = tuple(sorted(group))
        if key not in scores:
            scores[key] = group_score(matrix, key)
        return scores[key]

    if tasks <= EXHAUSTIVE_MAX_TASKS:
        found = max(_partitions(tasks, groups), key=lambda p: sum(score(g) for g in p))
        exhaustive = True
    else:
        found = _improve(_merge(tasks, groups, score), score)
        exhaustive = False
    ordered = sorted(sorted(group) for group in found)
    return Partition(ordered, sum(score(group) for group in ordered), exhaustive)


def _partitions(tasks: int, groups: int) -> Iterator[list[list[int]]]:
    """Every partition of range(tasks) into exactly `groups` non-empty groups, once each.

    Task t joins one of the groups so far or opens the next one (a restricted growth string),
    and never opens more groups than are left to fill or leaves too few tasks to fill them.
    """

    def place(task: int, partition: list[list[int]]) -> Iterator[list[list[int]]]:
        if task == tasks:
            if len(partition) == groups:
                yield [list(group) for group in partition]
            return
        if tasks - task > groups - len(partition):
            for group in partition:
                group.append(task)
                yield from place(task + 1, partition)
                group.pop()
        if len(partition) < groups:
            partition.append([task])
            yield from place(task + 1, partition)
            partition.pop()

    return place(0, [])


def _merge(tasks: int, groups: int, score: _Scorer) -> list[list[int]]:
    """Agglomerate single tasks: merge the pair of groups whose merge gains most, `tasks −
    groups` times."""
    partition = [[task] for task in range(tasks)]
    while len(partition) > groups:
        pairs = [
            (score(a + b) - score(a) - score(b), x, y)
            for x, a in enumerate(partition)
            for y, b in enumerate(partition)
            if x < y
        ]
        _, x, y = max(pairs, key=lambda pair: pair[0])
        partition[x] = partition[x] + partition.pop(y)
    return partition


def _improve(partition: list[list[int]], score: _Scorer) -> list[list[int]]:
    """Move one task at a time to the group where it raises the score most, until no move
    does; groups are never emptied, so their number is kept."""
    while True:
        best_gain, best_move = 1e-12, None  # a floor above 0 so rounding cannot cycle
        for x, source in enumerate(partition):
            if len(source) == 1:
                continue
            for task in source:
                rest = [t for t in source if t != task]
                for y, target in enumerate(partition):
                    if y == x:
                        continue
                    gain = score(rest) + score(target + [task]) - score(source) - score(target)
                    if gain > best_gain:
                        best_gain, best_move = gain, (task, x, y)
        if best_move is None:
            return partition
        task, x, y = best_move
        partition[x] = [t for t in partition[x] if t != task]
        partition[y] = partition[y] + [task]
