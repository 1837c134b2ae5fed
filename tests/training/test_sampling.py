"""Task sampling: the distribution each kind draws from, and exact resumption."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from mtlm.config import SamplerSpec
from mtlm.training.sampling import TaskSampler, sampling_probabilities

SIZES = {"big": 8000, "mid": 1500, "small": 500}
DRAWS = 20000


def frequencies(sizes: dict[str, int], seed: int = 0, **spec: Any) -> dict[str, float]:
    sampler = TaskSampler(sizes, SamplerSpec(**spec), seed=seed)
    counts = Counter(sampler.sample() for _ in range(DRAWS))
    return {name: counts[name] / DRAWS for name in sizes}


def assert_close(observed: dict[str, float], expected: dict[str, float], tolerance: float) -> None:
    assert set(observed) == set(expected)
    for name in expected:
        assert observed[name] == pytest.approx(expected[name], abs=tolerance), name


def test_proportional_matches_sizes() -> None:
    total = sum(SIZES.values())
    expected = {name: size / total for name, size in SIZES.items()}
    assert_close(sampling_probabilities(SIZES, SamplerSpec()), expected, 1e-12)
    assert_close(frequencies(SIZES, kind="proportional"), expected, 0.015)


def test_uniform_is_flat() -> None:
    expected = {name: 1 / 3 for name in SIZES}
    assert_close(sampling_probabilities(SIZES, SamplerSpec(kind="uniform")), expected, 1e-12)
    assert_close(frequencies(SIZES, kind="uniform"), expected, 0.015)


def test_temperature_one_equals_proportional() -> None:
    proportional = sampling_probabilities(SIZES, SamplerSpec(kind="proportional"))
    tempered = sampling_probabilities(SIZES, SamplerSpec(kind="temperature", temperature=1.0))
    assert_close(tempered, proportional, 1e-12)
    same_seed = [
        TaskSampler(SIZES, SamplerSpec(kind=kind, temperature=1.0), seed=7)
        for kind in ("proportional", "temperature")
    ]
    draws = [[sampler.sample() for _ in range(500)] for sampler in same_seed]
    assert draws[0] == draws[1]


def test_temperature_two_takes_the_square_root_of_sizes() -> None:
    roots = {name: size**0.5 for name, size in SIZES.items()}
    expected = {name: root / sum(roots.values()) for name, root in roots.items()}
    observed = frequencies(SIZES, kind="temperature", temperature=2.0)
    assert_close(observed, expected, 0.015)
    assert observed["big"] < 8000 / 10000 - 0.1


def test_large_temperature_is_near_uniform() -> None:
    probabilities = sampling_probabilities(SIZES, SamplerSpec(kind="temperature", temperature=100))
    assert_close(probabilities, {name: 1 / 3 for name in SIZES}, 0.01)
    assert probabilities["big"] > probabilities["mid"] > probabilities["small"]
    assert_close(
        frequencies(SIZES, kind="temperature", temperature=100),
        {name: 1 / 3 for name in SIZES},
        0.02,
    )


def test_size_cap_caps_large_tasks() -> None:
    expected = {"big": 1000 / 2500, "mid": 1000 / 2500, "small": 500 / 2500}
    observed = frequencies(SIZES, kind="proportional", size_cap=1000)
    assert_close(observed, expected, 0.015)
    tempered = sampling_probabilities(
        SIZES, SamplerSpec(kind="temperature", temperature=2.0, size_cap=1000)
    )
    assert tempered["big"] == pytest.approx(tempered["mid"])


def test_single_task_is_always_drawn() -> None:
    sampler = TaskSampler({"only": 3}, SamplerSpec(kind="temperature"), seed=0)
    assert {sampler.sample() for _ in range(50)} == {"only"}


def test_same_seed_same_sequence_other_seed_other_sequence() -> None:
    def draws(seed: int) -> list[str]:
        sampler = TaskSampler(SIZES, SamplerSpec(kind="uniform"), seed=seed)
        return [sampler.sample() for _ in range(200)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_state_dict_round_trip_continues_the_same_sequence() -> None:
    spec = SamplerSpec(kind="temperature", temperature=3.0)
    original = TaskSampler(SIZES, spec, seed=11)
    for _ in range(137):
        original.sample()
    state = json.loads(json.dumps(original.state_dict()))  # stored as JSON in checkpoints
    expected = [original.sample() for _ in range(300)]
    resumed = TaskSampler(SIZES, spec, seed=999)
    resumed.load_state_dict(state)
    assert [resumed.sample() for _ in range(300)] == expected
    fresh = TaskSampler(SIZES, spec, seed=11)
    assert [fresh.sample() for _ in range(300)] != expected
