"""Task sampling: the distribution each kind draws from, how annealed and dynamic sampling move,
and exact resumption."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from mtlm import ConfigError
from mtlm.config import sampler_spec
from mtlm.tasks.classification import Classification, ClassificationSpec
from mtlm.tasks.regression import Regression, RegressionSpec
from mtlm.tasks.token_classification import TokenClassification, TokenClassificationSpec
from mtlm.training.samplers import Sampler, build_sampler
from mtlm.training.samplers.dynamic import metric_gaps

SIZES = {"big": 8000, "mid": 1500, "small": 500}
DRAWS = 20000


def make(sizes: dict[str, int], seed: int = 0, **spec: Any) -> Sampler:
    """The sampler a config section with `spec` names (proportional when it names no kind)."""
    return build_sampler(sizes, sampler_spec(spec), seed)


def probabilities(sizes: dict[str, int], progress: float = 0.0, **spec: Any) -> dict[str, float]:
    """The sampler's probabilities `progress` into training."""
    sampler = make(sizes, **spec)
    sampler.set_progress(progress)
    return sampler.probabilities


def frequencies(sizes: dict[str, int], seed: int = 0, **spec: Any) -> dict[str, float]:
    sampler = make(sizes, seed, **spec)
    counts = Counter(sampler.sample() for _ in range(DRAWS))
    return {name: counts[name] / DRAWS for name in sizes}


def assert_close(observed: dict[str, float], expected: dict[str, float], tolerance: float) -> None:
    assert set(observed) == set(expected)
    for name in expected:
        assert observed[name] == pytest.approx(expected[name], abs=tolerance), name


def test_proportional_matches_sizes() -> None:
    total = sum(SIZES.values())
    expected = {name: size / total for name, size in SIZES.items()}
    assert_close(probabilities(SIZES), expected, 1e-12)
    assert_close(frequencies(SIZES, kind="proportional"), expected, 0.015)


def test_uniform_is_flat() -> None:
    expected = {name: 1 / 3 for name in SIZES}
    assert_close(probabilities(SIZES, kind="uniform"), expected, 1e-12)
    assert_close(frequencies(SIZES, kind="uniform"), expected, 0.015)


def test_temperature_one_equals_proportional() -> None:
    proportional = probabilities(SIZES, kind="proportional")
    tempered = probabilities(SIZES, kind="temperature", temperature=1.0)
    assert_close(tempered, proportional, 1e-12)
    same_seed = [
        make(SIZES, 7, kind="proportional"),
        make(SIZES, 7, kind="temperature", temperature=1.0),
    ]
    draws = [[sampler.sample() for _ in range(500)] for sampler in same_seed]
    assert draws[0] == draws[1]


def test_on_equal_sizes_every_size_sampler_draws_the_same_tasks() -> None:
    # The methods-quality benchmark relies on this to skip hard_proportional on the suite
    # whose tasks all have 300 training rows.
    equal = {name: 300 for name in ("a", "b", "c", "d", "e", "f")}
    samplers = [
        make(equal, 42, kind="proportional"),
        make(equal, 42, kind="temperature", temperature=2.0),
        make(equal, 42, kind="uniform"),
    ]
    draws = [[sampler.sample() for _ in range(2000)] for sampler in samplers]
    assert draws[0] == draws[1] == draws[2]
    assert set(draws[0]) == set(equal)


def test_temperature_two_takes_the_square_root_of_sizes() -> None:
    roots = {name: size**0.5 for name, size in SIZES.items()}
    expected = {name: root / sum(roots.values()) for name, root in roots.items()}
    observed = frequencies(SIZES, kind="temperature", temperature=2.0)
    assert_close(observed, expected, 0.015)
    assert observed["big"] < 8000 / 10000 - 0.1


def test_large_temperature_is_near_uniform() -> None:
    near = probabilities(SIZES, kind="temperature", temperature=100)
    assert_close(near, {name: 1 / 3 for name in SIZES}, 0.01)
    assert near["big"] > near["mid"] > near["small"]
    assert_close(
        frequencies(SIZES, kind="temperature", temperature=100),
        {name: 1 / 3 for name in SIZES},
        0.02,
    )


def test_size_cap_caps_large_tasks() -> None:
    expected = {"big": 1000 / 2500, "mid": 1000 / 2500, "small": 500 / 2500}
    observed = frequencies(SIZES, kind="proportional", size_cap=1000)
    assert_close(observed, expected, 0.015)
    tempered = probabilities(SIZES, kind="temperature", temperature=2.0, size_cap=1000)
    assert tempered["big"] == pytest.approx(tempered["mid"])


def test_single_task_is_always_drawn() -> None:
    sampler = make({"only": 3}, 0, kind="temperature")
    assert {sampler.sample() for _ in range(50)} == {"only"}


def test_same_seed_same_sequence_other_seed_other_sequence() -> None:
    def draws(seed: int) -> list[str]:
        sampler = make(SIZES, seed, kind="uniform")
        return [sampler.sample() for _ in range(200)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_state_dict_round_trip_continues_the_same_sequence() -> None:
    spec = dict(kind="temperature", temperature=3.0)
    original = make(SIZES, 11, **spec)
    for _ in range(137):
        original.sample()
    state = json.loads(json.dumps(original.state_dict()))  # stored as JSON in checkpoints
    expected = [original.sample() for _ in range(300)]
    resumed = make(SIZES, 999, **spec)
    resumed.load_state_dict(state)
    assert [resumed.sample() for _ in range(300)] == expected
    fresh = make(SIZES, 11, **spec)
    assert [fresh.sample() for _ in range(300)] != expected


# --- annealed ------------------------------------------------------------------------------
def test_annealed_moves_from_proportional_to_uniform_monotonically() -> None:
    spec = dict(kind="annealed", alpha_floor=0.0)
    proportional = probabilities(SIZES, kind="proportional")
    assert_close(probabilities(SIZES, 0.0, **spec), proportional, 1e-12)
    assert probabilities(SIZES, 1.0, **spec) == {name: 1 / 3 for name in SIZES}
    steps = [probabilities(SIZES, p / 10, **spec) for p in range(11)]
    for earlier, later in zip(steps, steps[1:], strict=False):
        assert later["big"] < earlier["big"]
        assert later["small"] > earlier["small"]
    # Half-way, α = 0.5: the square roots of the sizes.
    roots = {name: size**0.5 for name, size in SIZES.items()}
    assert_close(steps[5], {n: r / sum(roots.values()) for n, r in roots.items()}, 1e-12)


def test_annealed_stops_at_its_floor_and_follows_set_progress() -> None:
    spec = dict(kind="annealed", alpha_floor=0.5)
    roots = {name: size**0.5 for name, size in SIZES.items()}
    expected = {name: root / sum(roots.values()) for name, root in roots.items()}
    assert_close(probabilities(SIZES, 1.0, **spec), expected, 1e-12)
    assert_close(probabilities(SIZES, 3.0, **spec), expected, 1e-12)
    sampler = make(SIZES, 0, **spec)
    assert_close(sampler.probabilities, probabilities(SIZES, 0.0, **spec), 1e-12)
    sampler.set_progress(1.0)
    assert_close(sampler.probabilities, expected, 1e-12)
    counts = Counter(sampler.sample() for _ in range(DRAWS))
    assert_close({name: counts[name] / DRAWS for name in SIZES}, expected, 0.015)


def test_a_sampler_refuses_the_options_of_another_kind() -> None:
    with pytest.raises(ConfigError, match=r"uniform samplers take no 'size_cap'; proportional"):
        sampler_spec({"kind": "uniform", "size_cap": 10})


def test_set_progress_changes_nothing_for_other_samplers() -> None:
    sampler = make(SIZES, 0, kind="temperature")
    before = dict(sampler.probabilities)
    sampler.set_progress(0.9)
    assert sampler.probabilities == before


# --- round robin ---------------------------------------------------------------------------
def test_round_robin_cycles_in_order_and_resumes_its_turn() -> None:
    spec = dict(kind="round_robin")
    sampler = make(SIZES, 0, **spec)
    assert [sampler.sample() for _ in range(7)] == [*["big", "mid", "small"] * 2, "big"]
    state = json.loads(json.dumps(sampler.state_dict()))
    resumed = make(SIZES, 0, **spec)
    resumed.load_state_dict(state)
    assert [resumed.sample() for _ in range(4)] == ["mid", "small", "big", "mid"]
    assert sampler.probabilities == {name: 1 / 3 for name in SIZES}


# --- dynamic -------------------------------------------------------------------------------
def test_dynamic_gives_a_lagging_task_more_steps_within_the_floor() -> None:
    spec = dict(kind="dynamic", floor=0.1)
    sampler = make(SIZES, 0, **spec)
    assert sampler.probabilities == {name: 1 / 3 for name in SIZES}
    sampler.follow_gaps({"big": 0.02, "mid": 0.0, "small": 0.3})
    p = sampler.probabilities
    assert sum(p.values()) == pytest.approx(1.0)
    assert p["small"] > 1 / 3 > p["big"] > p["mid"]
    assert p["mid"] == pytest.approx(0.1)  # a task at its target keeps the floor
    assert p["small"] == pytest.approx(0.1 + 0.7 * 0.3 / 0.32)
    counts = Counter(sampler.sample() for _ in range(DRAWS))
    assert_close({name: counts[name] / DRAWS for name in SIZES}, p, 0.015)
    # Every task at its target: back to uniform; negative gaps count as none.
    sampler.follow_gaps({"big": 0.0, "mid": -0.5, "small": 0.0})
    assert sampler.probabilities == {name: 1 / 3 for name in SIZES}


def test_dynamic_with_a_zero_floor_trains_only_lagging_tasks() -> None:
    sampler = make(SIZES, 0, kind="dynamic", floor=0.0)
    sampler.follow_gaps({"big": 0.0, "mid": 0.1, "small": 0.3})
    assert sampler.probabilities == pytest.approx({"big": 0.0, "mid": 0.25, "small": 0.75})
    assert "big" not in {sampler.sample() for _ in range(500)}


def validation() -> tuple[dict[str, Any], dict[str, Any]]:
    """Three tasks, metrics of both directions, and a validation's results on them."""
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
    return tasks, results


@pytest.mark.parametrize("kind", ["proportional", "uniform", "temperature", "round_robin"])
def test_validation_results_change_nothing_for_other_samplers(kind: str) -> None:
    tasks, results = validation()
    sampler = make({name: 100 for name in tasks}, 0, kind=kind)
    before = dict(sampler.probabilities)
    sampler.observe(results, tasks)
    assert sampler.probabilities == before


def test_metric_gaps_for_both_directions_and_configured_targets() -> None:
    tasks, results = validation()
    gaps = metric_gaps(results, tasks, {})
    assert gaps == pytest.approx({"sentiment": 0.25, "score": 0.4, "tagging": 0.05})
    # Targets (say, single-task scores) replace the ideal; beating a target leaves no gap.
    targets = {"sentiment": 0.8, "score": 0.5, "tagging": 0.9}
    gaps = metric_gaps(results, tasks, targets)
    assert gaps == pytest.approx({"sentiment": 0.05, "score": 0.0, "tagging": 0.0})
    # A dynamic sampler follows the gaps to its targets after a validation.
    sampler = make({name: 100 for name in tasks}, 0, kind="dynamic", targets=targets)
    sampler.observe(results, tasks)
    assert sampler.probabilities == pytest.approx(
        {"sentiment": 0.9, "score": 0.05, "tagging": 0.05}
    )


def test_dynamic_targets_follow_a_subset_of_tasks() -> None:
    spec = sampler_spec({"kind": "dynamic", "targets": {"a": 0.5, "b": 0.7}})
    assert spec.for_tasks(["b"]).targets == {"b": 0.7}
    assert spec.targets == {"a": 0.5, "b": 0.7}
    uniform = sampler_spec({"kind": "uniform"})
    assert uniform.for_tasks(["b"]) == uniform
