"""Task sampling: the distribution each kind draws from, how annealed and dynamic sampling move,
and exact resumption."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from mtlm.config import SamplerSpec
from mtlm.tasks.classification import Classification, ClassificationSpec
from mtlm.tasks.regression import Regression, RegressionSpec
from mtlm.tasks.token_classification import TokenClassification, TokenClassificationSpec
from mtlm.training.sampling import TaskSampler, metric_gaps, sampling_probabilities

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


# --- annealed ------------------------------------------------------------------------------
def test_annealed_moves_from_proportional_to_uniform_monotonically() -> None:
    spec = SamplerSpec(kind="annealed", alpha_floor=0.0)
    proportional = sampling_probabilities(SIZES, SamplerSpec(kind="proportional"))
    assert_close(sampling_probabilities(SIZES, spec, progress=0.0), proportional, 1e-12)
    assert sampling_probabilities(SIZES, spec, progress=1.0) == {name: 1 / 3 for name in SIZES}
    steps = [sampling_probabilities(SIZES, spec, progress=p / 10) for p in range(11)]
    for earlier, later in zip(steps, steps[1:], strict=False):
        assert later["big"] < earlier["big"]
        assert later["small"] > earlier["small"]
    # Half-way, α = 0.5: the square roots of the sizes.
    roots = {name: size**0.5 for name, size in SIZES.items()}
    assert_close(steps[5], {n: r / sum(roots.values()) for n, r in roots.items()}, 1e-12)


def test_annealed_stops_at_its_floor_and_follows_set_progress() -> None:
    spec = SamplerSpec(kind="annealed", alpha_floor=0.5)
    roots = {name: size**0.5 for name, size in SIZES.items()}
    expected = {name: root / sum(roots.values()) for name, root in roots.items()}
    assert_close(sampling_probabilities(SIZES, spec, progress=1.0), expected, 1e-12)
    assert_close(sampling_probabilities(SIZES, spec, progress=3.0), expected, 1e-12)
    sampler = TaskSampler(SIZES, spec, seed=0)
    assert_close(sampler.probabilities, sampling_probabilities(SIZES, spec, 0.0), 1e-12)
    sampler.set_progress(1.0)
    assert_close(sampler.probabilities, expected, 1e-12)
    counts = Counter(sampler.sample() for _ in range(DRAWS))
    assert_close({name: counts[name] / DRAWS for name in SIZES}, expected, 0.015)


def test_set_progress_changes_nothing_for_other_samplers() -> None:
    sampler = TaskSampler(SIZES, SamplerSpec(kind="temperature"), seed=0)
    before = dict(sampler.probabilities)
    sampler.set_progress(0.9)
    assert sampler.probabilities == before


# --- round robin ---------------------------------------------------------------------------
def test_round_robin_cycles_in_order_and_resumes_its_turn() -> None:
    spec = SamplerSpec(kind="round_robin")
    sampler = TaskSampler(SIZES, spec, seed=0)
    assert [sampler.sample() for _ in range(7)] == [*["big", "mid", "small"] * 2, "big"]
    state = json.loads(json.dumps(sampler.state_dict()))
    resumed = TaskSampler(SIZES, spec, seed=0)
    resumed.load_state_dict(state)
    assert [resumed.sample() for _ in range(4)] == ["mid", "small", "big", "mid"]
    assert sampler.probabilities == {name: 1 / 3 for name in SIZES}


# --- dynamic -------------------------------------------------------------------------------
def test_dynamic_gives_a_lagging_task_more_steps_within_the_floor() -> None:
    spec = SamplerSpec(kind="dynamic", floor=0.1)
    sampler = TaskSampler(SIZES, spec, seed=0)
    assert sampler.probabilities == {name: 1 / 3 for name in SIZES}
    sampler.observe({"big": 0.02, "mid": 0.0, "small": 0.3})
    p = sampler.probabilities
    assert sum(p.values()) == pytest.approx(1.0)
    assert p["small"] > 1 / 3 > p["big"] > p["mid"]
    assert p["mid"] == pytest.approx(0.1)  # a task at its target keeps the floor
    assert p["small"] == pytest.approx(0.1 + 0.7 * 0.3 / 0.32)
    counts = Counter(sampler.sample() for _ in range(DRAWS))
    assert_close({name: counts[name] / DRAWS for name in SIZES}, p, 0.015)
    # Every task at its target: back to uniform; negative gaps count as none.
    sampler.observe({"big": 0.0, "mid": -0.5, "small": 0.0})
    assert sampler.probabilities == {name: 1 / 3 for name in SIZES}


def test_dynamic_with_a_zero_floor_trains_only_lagging_tasks() -> None:
    sampler = TaskSampler(SIZES, SamplerSpec(kind="dynamic", floor=0.0), seed=0)
    sampler.observe({"big": 0.0, "mid": 0.1, "small": 0.3})
    assert sampler.probabilities == pytest.approx({"big": 0.0, "mid": 0.25, "small": 0.75})
    assert "big" not in {sampler.sample() for _ in range(500)}


def test_observe_changes_nothing_for_other_samplers() -> None:
    sampler = TaskSampler(SIZES, SamplerSpec(kind="uniform"), seed=0)
    sampler.observe({"big": 0.0, "mid": 0.0, "small": 1.0})
    assert sampler.probabilities == {name: 1 / 3 for name in SIZES}


def test_metric_gaps_for_both_directions_and_configured_targets() -> None:
    data = {"train": "x"}
    tasks = {
        "sentiment": Classification(
            ClassificationSpec(name="sentiment", kind="classification", data=data)
        ),
        "score": Regression(
            RegressionSpec(name="score", kind="regression", data=data, primary_metric="mse")
        ),
        "tagging": TokenClassification(
            TokenClassificationSpec(name="tagging", kind="token_classification", data=data)
        ),
    }
    results = {
        "tasks": {
            "sentiment": {"primary": "accuracy", "accuracy": 0.75},
            "score": {"primary": "mse", "mse": 0.4},
            "tagging": {"primary": "accuracy", "accuracy": 0.95},
        }
    }
    gaps = metric_gaps(results, tasks, {})
    assert gaps == pytest.approx({"sentiment": 0.25, "score": 0.4, "tagging": 0.05})
    # Targets (say, single-task scores) replace the ideal; beating a target leaves no gap.
    gaps = metric_gaps(results, tasks, {"sentiment": 0.8, "score": 0.5, "tagging": 0.9})
    assert gaps == pytest.approx({"sentiment": 0.05, "score": 0.0, "tagging": 0.0})
    sampler = TaskSampler({name: 100 for name in tasks}, SamplerSpec(kind="dynamic"), seed=0)
    sampler.observe(gaps)
    assert max(sampler.probabilities, key=sampler.probabilities.get) == "sentiment"
