"""The step breakdown of the speed benchmark: profiled time grouped by kind of work, and the
model's matrix products recorded and replayed alone."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import BertModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import step_profile  # noqa: E402
from training_speed import breakdown_markdown  # noqa: E402


def training_steps(model: nn.Module, steps: int = 2):
    """A function training `model` for a few steps on a fixed batch, its phases marked."""
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    inputs = torch.randint(0, 10, (4, 12))

    def run() -> None:
        for _ in range(steps):
            states = model(input_ids=inputs).last_hidden_state
            with step_profile.phase("loss"):
                loss = states.square().mean()
            loss.backward()
            with step_profile.phase("optimizer"):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

    return run


def test_a_profiled_step_is_split_into_the_kinds_of_work_a_transformer_does(tiny_model_dir):
    model = BertModel.from_pretrained(tiny_model_dir).train()
    run = training_steps(model)
    run()
    shares = step_profile.time_shares(model, run)
    assert abs(sum(shares.values()) - 1) < 1e-3
    for kind in (step_profile.GEMMS, "dropout", "layer norm", "GELU", "embedding", "loss"):
        assert shares.get(kind, 0) > 0, kind
    assert shares["optimizer"] > 0 and shares["attention softmax"] > 0
    assert list(shares.values()) == sorted(shares.values(), reverse=True)


@dataclass
class Event:
    """What `categorize` reads of a profiler event."""

    name: str
    self_cpu_time_total: float = 0.0
    cpu_parent: Event | None = None
    sequence_nr: int = -1


def test_a_backward_operation_counts_as_the_work_of_its_forward_operation():
    dropout = Event("mtlm::dropout", 1)
    forward_mul = Event("aten::mul", 10, dropout, sequence_nr=7)
    residual = Event("aten::add", 3, sequence_nr=8)
    node = Event("autograd::engine::evaluate_function: MulBackward0", 1, sequence_nr=7)
    backward_mul = Event("aten::mul", 20, node)
    softmax = Event("aten::_softmax_backward_data", 4, node)
    shares = step_profile.categorize([dropout, forward_mul, residual, node, backward_mul, softmax])
    # The autograd node's own time too; a scope's own time is the framework's.
    assert shares == {
        "dropout": 31,
        step_profile.FRAMEWORK: 1,
        step_profile.OTHER: 3,
        "attention softmax": 4,
    }


def test_a_linear_layer_records_its_forward_and_both_backward_products():
    layer = nn.Linear(8, 5)
    inputs = torch.randn(3, 8, requires_grad=True)

    def run() -> None:
        layer(inputs).sum().backward()

    calls = step_profile.gemm_calls(run)
    assert sorted(call.operation._overloadpacket.__name__ for call in calls) == [
        "addmm",
        "mm",
        "mm",
    ]
    assert all(count == 1 for count in calls.values())
    assert sum(call.flops() for call in calls) == 3 * 2 * 3 * 8 * 5
    # The weight enters the forward transposed: its recorded strides say so.
    forward = next(call for call in calls if call.operation._overloadpacket.__name__ == "addmm")
    assert forward.arguments[2].stride == (1, 8)
    assert step_profile.gemm_seconds(calls) > 0


def test_the_section_reports_the_shares_and_the_gemm_ceiling():
    text = breakdown_markdown(
        {
            "steps": 30,
            "shares": {step_profile.GEMMS: 0.6, "dropout": 0.4},
            "step_seconds": 10.0,
            "gemm_seconds": 6.0,
            "gemm_share": 0.6,
            "gemm_over_matmul": 0.85,
            "useful_over_matmul": 0.47,
            "gemm_ceiling": 0.79,
        }
    )
    assert f"| {step_profile.GEMMS} | 60.0 % |" in text and "| dropout | 40.0 % |" in text
    assert "0.85 of the matmul rate" in text and "would be 0.79 (these steps now: 0.47)" in text
