"""Balancers: every kind trains the tiny model, each method does what its paper says on cases
small enough to check by hand, learned state survives a resume, bad configs are named."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file
from torch import Tensor, nn

from mtlm import ConfigError, Trainer
from mtlm.config import balancer_spec
from mtlm.training.balancers import BALANCERS, Balancer, JointStep, build_balancer

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are solving a parameterized problem:UserWarning"
)

TASKS = ("sentiment", "score", "tagging")
AGGREGATORS = [kind for kind, b in BALANCERS.items() if b.options.aggregates_gradients]
REPRESENTATION = [kind for kind in AGGREGATORS if BALANCERS[kind].options.weighs_representation]
#: Aggregators whose update is not a weighted sum of the task gradients: no task weights.
UNWEIGHTED = ("graddrop", "config")
CASES = [(kind, "parameters") for kind in BALANCERS] + [
    (kind, "representation") for kind in REPRESENTATION
]


def make_balancer(tasks: int, **section: Any) -> Balancer:
    """The balancer of a config's `training.balancer` section."""
    return build_balancer(balancer_spec(section), tasks)


def train_rows(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if "loss" in row]


# --- every kind through the Trainer --------------------------------------------------------
@pytest.mark.parametrize(("kind", "on"), CASES, ids=[f"{k}-{o}" for k, o in CASES])
def test_every_balancer_trains_the_tiny_model_and_logs_what_it_did(make_config, tmp_path, kind, on):
    config = make_config(
        step_mode="joint",
        max_steps=4,
        eval_steps=None,
        logging_steps=2,
        balancer={"kind": kind, **({"gradients": on} if kind in AGGREGATORS else {})},
    )
    trainer = Trainer(config)
    before = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    trainer.train()
    after = trainer.model.state_dict()

    unchanged = sorted(key for key in before if torch.equal(before[key], after[key]))
    # Everything the tasks use moved; the backbone's pooler, which no head reads, did not.
    assert unchanged == ["backbone.pooler.dense.bias", "backbone.pooler.dense.weight"]
    rows = train_rows(tmp_path / "run")
    assert [row["step"] for row in rows] == [2, 4]
    for row in rows:
        assert row["batches"] == {name: 2 for name in TASKS}
        assert all(math.isfinite(loss) for loss in row["losses"].values())
        if kind in UNWEIGHTED:
            assert "task_weights" not in row
        else:
            assert set(row["task_weights"]) == set(TASKS)
            assert all(math.isfinite(weight) for weight in row["task_weights"].values())
        if kind in AGGREGATORS:
            cosines = row["gradient_cosine"]
            assert set(cosines) == {"sentiment|score", "sentiment|tagging", "score|tagging"}
            assert all(-1.0 - 1e-6 <= value <= 1.0 + 1e-6 for value in cosines.values())
            if on == "representation":
                # Each task's representation comes from its own batch: orthogonal gradients.
                assert all(value == 0.0 for value in cosines.values())
        else:
            assert "gradient_cosine" not in row
    if kind == "static":
        assert all(row["task_weights"] == {name: 1.0 for name in TASKS} for row in rows)
    if kind == "gradnorm":
        assert sum(rows[-1]["task_weights"].values()) == pytest.approx(3.0, rel=1e-5)


# --- hand-made cases -----------------------------------------------------------------------
class Dot(nn.Module):
    """x · θ for a parameter θ of the given shape (flattened)."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(*shape))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.theta.reshape(-1)


class Square(nn.Module):
    """h² for a parameter h."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.h = nn.Parameter(torch.tensor([value]))

    def forward(self) -> Tensor:
        return (self.h**2).sum()


class LinearTasks(nn.Module):
    """Losses L_i = g_i · θ + h_i² over shared parameters θ (a vector and a matrix, in two
    modules) and one head parameter h_i per task: ∇_θ L_i is exactly g_i, ∇_h L_i is 2 h_i."""

    def __init__(self, gradients: Tensor) -> None:
        super().__init__()
        self.gradients = gradients
        self.shared = nn.ModuleList([Dot(2), Dot(1, 2)])
        self.unused = Dot(3)  # shared, but no task reaches it
        self.heads = nn.ModuleList([Square(0.5 + i) for i in range(len(gradients))])

    def losses(self) -> Tensor:
        return torch.stack(
            [
                self.shared[0](g[:2]) + self.shared[1](g[2:]) + head()
                for g, head in zip(self.gradients, self.heads, strict=True)
            ]
        )

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.shared.parameters(), *self.unused.parameters()]

    def step(self) -> JointStep:
        shared = self.shared_parameters()
        return JointStep(
            features=[],
            shared=shared,
            task_parameters=[list(head.parameters()) for head in self.heads],
            last_shared=shared,
            backward=lambda total: total.backward(),
        )

    def shared_gradient(self) -> Tensor:
        return torch.cat([parameter.grad.reshape(-1) for parameter in self.shared.parameters()])

    def aggregate(self, kind: str) -> tuple[Balancer, Any]:
        """One balancing of the losses by the aggregator `kind`."""
        balancer = make_balancer(len(self.gradients), kind=kind)
        return balancer, balancer.backward(self.losses(), self.step())


CONFLICTING = torch.tensor([[1.0, 0.0, 0.5, -1.0], [-2.0, 1.0, 0.2, 1.5]])


def test_pcgrad_removes_the_conflicting_component() -> None:
    g1, g2 = CONFLICTING
    assert g1 @ g2 < 0
    tasks = LinearTasks(CONFLICTING)
    tasks.aggregate("pcgrad")
    update = tasks.shared_gradient()
    projected = (g1 - (g1 @ g2) / (g2 @ g2) * g2) + (g2 - (g1 @ g2) / (g1 @ g1) * g1)
    torch.testing.assert_close(update, projected)
    assert update @ g1 >= -1e-6 and update @ g2 >= -1e-6
    assert (g1 + g2) @ g1 < 0 or (g1 + g2) @ g2 < 0  # the plain sum would hurt one task
    # Heads get their own task's gradient, untouched by the aggregation.
    assert [head.h.grad.item() for head in tasks.heads] == [1.0, 3.0]
    assert tasks.unused.theta.grad is None


def test_pcgrad_leaves_agreeing_gradients_alone() -> None:
    agreeing = torch.tensor([[1.0, 0.2, 0.0, 0.0], [0.5, 1.0, 0.1, 0.0]])
    tasks = LinearTasks(agreeing)
    _, balanced = tasks.aggregate("pcgrad")
    torch.testing.assert_close(tasks.shared_gradient(), agreeing.sum(dim=0))
    torch.testing.assert_close(balanced.gramian, agreeing @ agreeing.T)


def mgda_closed_form(g1: Tensor, g2: Tensor) -> float:
    """argmin over w ∈ [0, 1] of ||w g1 + (1 - w) g2||."""
    return float(((g2 - g1) @ g2 / (g1 - g2).pow(2).sum()).clamp(0.0, 1.0))


@pytest.mark.parametrize(
    "gradients",
    [
        CONFLICTING,
        torch.tensor([[3.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]),  # orthogonal, unequal
        torch.tensor([[0.2, 0.1, 0.0, 0.0], [2.0, 1.5, 0.0, 0.0]]),  # clipped: w1 = 1
    ],
)
def test_mgda_weights_are_the_min_norm_point_of_the_simplex(gradients: Tensor) -> None:
    tasks = LinearTasks(gradients)
    weights = tasks.aggregate("mgda")[1].weights
    assert weights.min() >= 0 and weights.sum().item() == pytest.approx(1.0, abs=1e-5)
    w1 = mgda_closed_form(*gradients)
    assert weights[0].item() == pytest.approx(w1, abs=2e-3)
    torch.testing.assert_close(tasks.shared_gradient(), weights @ gradients)
    # No other point of the simplex gives a shorter combined gradient.
    norm = (weights @ gradients).norm()
    grid = torch.linspace(0, 1, 201)
    norms = (grid[:, None] * gradients[0] + (1 - grid[:, None]) * gradients[1]).norm(dim=1)
    assert norm <= norms.min() + 1e-3


def seeded_gradients() -> Tensor:
    generator = torch.Generator().manual_seed(3)
    gradients = torch.randn(3, 4, generator=generator)
    gradients[2] = -0.8 * gradients[0] + 0.1 * gradients[1]  # a real conflict
    return gradients


@pytest.mark.parametrize("kind", AGGREGATORS)
def test_parameter_aggregation_applies_exactly_the_aggregator(kind: str) -> None:
    gradients = seeded_gradients()
    tasks = LinearTasks(gradients)
    torch.manual_seed(0)  # GradDrop and GradVac draw random numbers
    balancer, balanced = tasks.aggregate(kind)
    torch.manual_seed(0)
    expected = make_balancer(3, kind=kind).aggregator(gradients)
    # The Gramian is summed parameter by parameter, equal to J Jᵀ up to rounding, which an
    # iterative solver (CAGrad's) can amplify a little.
    close = {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(tasks.shared_gradient(), expected, **close)
    if balanced.weights is not None:
        torch.testing.assert_close(balanced.weights @ gradients, expected, **close)
    assert (balanced.weights is None) == (kind in UNWEIGHTED)
    torch.testing.assert_close(balanced.gramian, gradients @ gradients.T)
    assert tasks.unused.theta.grad is None
    # Heads get their own task's gradient, untouched by the aggregation.
    assert [head.h.grad.item() for head in tasks.heads] == [1.0, 3.0, 5.0]
    # The Jacobian went to torchjd through the parameters' `.jac` fields, which it emptied.
    assert not any(hasattr(parameter, "jac") for parameter in tasks.shared_parameters())


def test_gradients_accumulate_over_micro_batches() -> None:
    gradients = seeded_gradients()
    tasks = LinearTasks(gradients)
    balancer = make_balancer(3, kind="upgrad")
    for _ in range(2):
        balancer.backward(tasks.losses(), tasks.step())
    expected = make_balancer(3, kind="upgrad").aggregator(gradients)
    torch.testing.assert_close(tasks.shared_gradient(), 2 * expected)
    assert [head.h.grad.item() for head in tasks.heads] == [2.0, 6.0, 10.0]


def test_config_differs_from_the_plain_sum_on_conflicting_gradients() -> None:
    gradients = seeded_gradients()
    tasks = LinearTasks(gradients)
    tasks.aggregate("config")
    update = tasks.shared_gradient()
    assert not torch.allclose(update, gradients.sum(dim=0), atol=1e-3)
    # ConFIG's direction has a positive inner product with every task's gradient.
    assert (gradients @ update).min() > 0


def test_uncertainty_log_variances_converge_to_the_log_of_the_losses() -> None:
    # Kendall et al. (2018): 0.5 e^{-s} L + 0.5 s is smallest at s = log L.
    constant = torch.tensor([0.25, 1.0, 4.0])
    balancer = make_balancer(3, kind="uncertainty", learning_rate=0.05)
    group = balancer.parameter_group()
    assert group["lr"] == 0.05 and group["weight_decay"] == 0.0
    optimizer = torch.optim.Adam(group["params"], lr=group["lr"])
    for _ in range(600):
        optimizer.zero_grad()
        losses = constant.clone().requires_grad_()
        balanced = balancer.backward(losses, JointStep([], [], [], [], lambda t: t.backward()))
        optimizer.step()
    (log_variances,) = group["params"]
    torch.testing.assert_close(log_variances.detach(), constant.log(), atol=1e-2, rtol=0)
    # The weights it reports are d total / d L_i = 0.5 e^{-s_i}, so 0.5 / L_i at the optimum.
    torch.testing.assert_close(balanced.weights, 0.5 / constant, atol=1e-2, rtol=0)


def scalar_step() -> JointStep:
    return JointStep([], [], [], [], lambda total: total.backward())


def test_dwa_weighs_the_slowest_falling_loss_most_and_keeps_the_sum() -> None:
    balancer = make_balancer(3, kind="dwa", temperature=2.0)
    histories = [[1.0, 1.0, 1.0], [0.5, 1.0, 0.9]]  # task 1 did not improve at all
    for epoch_losses in histories:
        for _ in range(3):
            losses = torch.tensor(epoch_losses, requires_grad=True)
            weights = balancer.backward(losses, scalar_step()).weights
            # Before two epochs of history, DWA weighs every task 1.
            assert weights.tolist() == [1.0, 1.0, 1.0]
        balancer.end_epoch()
    losses = torch.tensor([0.4, 1.0, 0.8], requires_grad=True)
    weights = balancer.backward(losses, scalar_step()).weights
    assert weights.sum().item() == pytest.approx(3.0)
    rates = torch.tensor(histories[1]) / torch.tensor(histories[0])
    torch.testing.assert_close(weights, 3 * torch.softmax(rates / 2.0, dim=0))
    assert weights.argmax().item() == 1 and weights.argmin().item() == 0


class QuadraticTasks:
    """L_i = a_i(t) ||w||² / 2 on one shared vector w: task i's loss (and its gradient norm)
    falls as a_i does, so how fast each task "learns" is set by hand."""

    def __init__(self) -> None:
        self.w = nn.Parameter(torch.tensor([1.0, -2.0]))

    def losses(self, scales: list[float]) -> Tensor:
        return torch.stack([a * self.w.pow(2).sum() / 2 for a in scales])

    def step(self) -> JointStep:
        return JointStep([], [self.w], [[], []], [self.w], lambda total: total.backward())


def test_gradnorm_gives_the_slower_task_the_larger_weight() -> None:
    tasks = QuadraticTasks()
    balancer = make_balancer(2, kind="gradnorm", alpha=1.5, learning_rate=0.05)
    for t in range(40):
        scales = [0.95**t, 1.0]  # task 0 learns, task 1 does not
        used = balancer.backward(tasks.losses(scales), tasks.step()).weights
        assert used.min() > 0 and used.sum().item() == pytest.approx(2.0, rel=1e-5)
        assert balancer.weights.min() > 0
        assert balancer.weights.sum().item() == pytest.approx(2.0, rel=1e-5)
    assert balancer.weights[1] > 1.2 > 0.8 > balancer.weights[0]


def test_gradnorm_keeps_equal_weights_for_tasks_that_learn_alike() -> None:
    tasks = QuadraticTasks()
    balancer = make_balancer(2, kind="gradnorm", learning_rate=0.05)
    for t in range(10):
        balancer.backward(tasks.losses([0.9**t, 0.9**t]), tasks.step())
    torch.testing.assert_close(balancer.weights.detach(), torch.ones(2))


class SharedEncoder(nn.Module):
    """A shared linear encoder and one linear head per task, on separate batches."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(3, 4)
        self.heads = nn.ModuleList([nn.Linear(4, 1), nn.Linear(4, 1)])
        self.inputs = [torch.randn(5, 3), 3 * torch.randn(6, 3)]
        self.targets = [torch.randn(5, 1), torch.randn(6, 1)]

    def features_and_losses(self) -> tuple[list[Tensor], Tensor]:
        features = [torch.tanh(self.encoder(x)) for x in self.inputs]
        losses = torch.stack(
            [
                nn.functional.mse_loss(head(f), y)
                for head, f, y in zip(self.heads, features, self.targets, strict=True)
            ]
        )
        return features, losses

    def gradients(self) -> list[Tensor]:
        return [p.grad.clone() for p in self.parameters()]


@pytest.mark.parametrize("kind", REPRESENTATION)
def test_representation_aggregator_backward_is_the_weighted_sum(kind: str) -> None:
    model = SharedEncoder()
    features, losses = model.features_and_losses()
    step = JointStep(
        features=features,
        shared=list(model.encoder.parameters()),
        task_parameters=[list(head.parameters()) for head in model.heads],
        last_shared=list(model.encoder.parameters()),
        backward=lambda total: total.backward(),
    )
    balancer = make_balancer(2, kind=kind, gradients="representation")
    assert not balancer.reduces_gradients_itself  # one plain backward, through DDP's hooks
    balanced = balancer.backward(losses, step)
    got = model.gradients()

    model.zero_grad()
    features, losses = model.features_and_losses()
    # The weights come from the gradients with respect to each task's own features: those are
    # orthogonal, so the Gramian is diagonal, holding their squared norms.
    squared = [
        torch.autograd.grad(loss, f, retain_graph=True)[0].pow(2).sum()
        for loss, f in zip(losses, features, strict=True)
    ]
    torch.testing.assert_close(balanced.gramian, torch.diag(torch.stack(squared)))
    (balanced.weights * losses).sum().backward()
    for mine, expected in zip(got, model.gradients(), strict=True):
        torch.testing.assert_close(mine, expected)


def test_representation_mgda_weights_follow_the_closed_form() -> None:
    model = SharedEncoder()
    features, losses = model.features_and_losses()
    step = JointStep(features, [], [[], []], [], lambda total: total.backward())
    squared = [
        torch.autograd.grad(loss, f, retain_graph=True)[0].pow(2).sum()
        for loss, f in zip(losses, features, strict=True)
    ]
    balancer = make_balancer(2, kind="mgda", gradients="representation")
    weights = balancer.backward(losses, step).weights
    # Orthogonal gradients: the min-norm point weighs each task by the other's squared norm.
    expected = torch.stack([squared[1], squared[0]]) / (squared[0] + squared[1])
    torch.testing.assert_close(weights, expected, atol=2e-3, rtol=0)


# --- learned state across a resume ---------------------------------------------------------
#: Timing fields of a log row; every other field must match between the two runs.
_TIMING = ("examples_per_second", "tokens_per_second")


def same_structure(left: Any, right: Any) -> bool:
    """Whether two saved states hold equal values, tensors compared bitwise."""
    if isinstance(left, Tensor) or isinstance(right, Tensor):
        return (
            isinstance(left, Tensor)
            and isinstance(right, Tensor)
            and left.shape == right.shape
            and torch.equal(left, right)
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_structure(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(same_structure, left, right))
    return left == right


def log_rows(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if key not in _TIMING} for row in rows]


@pytest.mark.parametrize("kind", ["uncertainty", "famo", "dwa", "gradnorm", "gradvac"])
def test_learned_balancer_state_survives_a_resume(make_config, tmp_path, kind):
    settings = {
        "step_mode": "joint",
        "balancer": {"kind": kind},
        # 192 examples, 66 a step: 3 steps an epoch, so the checkpoint at step 5 falls inside
        # the second epoch (DWA holds one epoch's average and a partial sum there) and DWA's
        # weights leave 1 from step 7.
        "batch_size": 22,
        "max_steps": 10,
        "save_steps": 5,
        "logging_steps": 1,
        "eval_steps": None,
        "load_best_model_at_end": False,
    }
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    Trainer(make_config(output_dir=str(reference), **settings)).train()
    Trainer(make_config(output_dir=str(resumed), **settings)).train()
    # Take the second run back to its step-5 checkpoint, then resume it.
    shutil.rmtree(resumed / "model")
    shutil.rmtree(resumed / "checkpoints" / "step-10")
    saved = torch.load(resumed / "checkpoints/step-5/balancer.pt", weights_only=True)
    fresh = make_balancer(3, kind=kind).state_dict()
    assert not same_structure(saved, fresh), "the balancer had learned nothing by step 5"
    Trainer(make_config(output_dir=str(resumed), **settings)).train(resume=True)

    summary = json.loads((resumed / "train_summary.json").read_text())
    assert summary["steps_per_epoch"] == 3
    assert summary["steps_this_session"] == 5  # it did resume, from step 5
    for file in ("model/model.safetensors", "model/heads.safetensors"):
        left, right = load_file(reference / file), load_file(resumed / file)
        assert left.keys() == right.keys()
        assert all(torch.equal(left[key], right[key]) for key in left), file
    final = [
        torch.load(run / "checkpoints/step-10/balancer.pt", weights_only=True)
        for run in (reference, resumed)
    ]
    assert same_structure(*final)
    assert log_rows(resumed) == log_rows(reference)
    weights = [row["task_weights"] for row in log_rows(reference) if "task_weights" in row]
    # The resumed steps weighed the tasks unequally at least once.
    assert len(weights) == 10 and any(w != dict.fromkeys(TASKS, 1.0) for w in weights[5:])


# --- configuration errors ------------------------------------------------------------------
def test_a_learned_balancer_needs_joint_steps(make_config):
    with pytest.raises(ConfigError, match=r"training\.balancer\.kind 'uncertainty' needs .*joint"):
        make_config(balancer={"kind": "uncertainty"})


def test_representation_mode_refuses_a_conflict_based_aggregator(make_config):
    with pytest.raises(
        ConfigError, match=r"training\.balancer\.gradients: 'pcgrad' reacts to conflicts"
    ):
        make_config(step_mode="joint", balancer={"kind": "pcgrad", "gradients": "representation"})


@pytest.mark.parametrize("kind", ["static", "uncertainty", "gradnorm", "mgda"])
def test_an_unknown_balancer_option_is_named(make_config, kind):
    with pytest.raises(ConfigError, match=r"training\.balancer\.bogus: unknown key 'bogus'"):
        make_config(step_mode="joint", balancer={"kind": kind, "bogus": 1})


def test_an_option_of_another_balancer_names_the_balancers_that_take_it(make_config):
    message = r"training\.balancer\.beta: cagrad balancers take no 'beta'; gradvac balancers do"
    with pytest.raises(ConfigError, match=message):
        make_config(step_mode="joint", balancer={"kind": "cagrad", "beta": 0.3})
    message = r"training\.balancer\.gradients: static balancers take no 'gradients'; pcgrad, "
    with pytest.raises(ConfigError, match=message):
        make_config(step_mode="joint", balancer={"kind": "static", "gradients": "parameters"})


def test_balancer_options_reach_the_method(make_config):
    cagrad = make_balancer(3, kind="cagrad", c=0.25)
    assert cagrad.aggregator.c == 0.25
    stch = make_balancer(3, kind="stch", mu=0.5)
    assert stch.scalarizer.mu == 0.5


def test_per_task_balancers_refuse_joint_groups(make_config):
    groups = [["sentiment", "score"], ["tagging"]]
    with pytest.raises(ConfigError, match=r"training\.joint_groups: .*'uncertainty'"):
        make_config(step_mode="joint", joint_groups=groups, balancer={"kind": "uncertainty"})
    every_task = [["tagging", "score", "sentiment"]]
    make_config(step_mode="joint", joint_groups=every_task, balancer={"kind": "uncertainty"})
    make_config(step_mode="joint", joint_groups=groups, balancer={"kind": "pcgrad"})


@pytest.fixture
def fresh_accelerator_state():
    """Accelerate keeps one process-wide state; a test that changes its precision resets it."""
    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_fp16_with_a_parameter_aggregator_is_refused(
    make_config, tmp_path, fresh_accelerator_state
):
    config = make_config(step_mode="joint", mixed_precision="fp16", balancer={"kind": "pcgrad"})
    trainer = Trainer(config)
    with pytest.raises(ConfigError, match=r"^training\.mixed_precision: fp16 .*pcgrad"):
        trainer.train()
    assert not (tmp_path / "run").exists()
