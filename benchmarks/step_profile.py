"""Where a training step's time goes, and how fast its matrix products could run alone.

`time_shares` runs training steps under `torch.profiler` and groups the self CPU time of every
operation by the kind of work it does (GEMMs, softmax, dropout, GELU, ...): an operation is
named by what it is, else by the module or step phase it runs in; a backward operation by the
forward operation its autograd node belongs to. `gemm_calls` records the model's matrix
products (shapes, strides, dtype: transposes included) and `gemm_seconds` replays them alone,
which bounds what the step could reach were everything else free.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils._python_dispatch import TorchDispatchMode

GEMMS = "GEMMs (linear layers, attention products; forward and backward)"
#: Operations named by what they are.
OPERATIONS = {
    **dict.fromkeys(("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"), GEMMS),
    **dict.fromkeys(("aten::_softmax", "aten::_softmax_backward_data"), "attention softmax"),
    "aten::bernoulli_": "dropout",
    **dict.fromkeys(("aten::native_layer_norm", "aten::native_layer_norm_backward"), "layer norm"),
    **dict.fromkeys(("aten::gelu", "aten::gelu_backward"), "GELU"),
    **dict.fromkeys(("aten::embedding", "aten::embedding_dense_backward"), "embedding"),
    "aten::_fused_adamw_": "optimizer",
}
#: Scopes (modules, step phases, composite operations) that name what runs inside them; the
#: innermost one wins.
SCOPES = {
    "aten::dropout": "dropout",
    "mtlm::dropout": "dropout",
    "mtlm::layer norm": "layer norm",
    "mtlm::GELU": "GELU",
    "mtlm::embedding": "embedding",
    "mtlm::heads": "heads",
    "mtlm::attention": "attention (masks, scaling, head reshapes)",
    "aten::addmm": GEMMS,  # its output's bias copy
    "AddmmBackward0": GEMMS,  # the bias gradient
    "EmbeddingBackward0": "embedding",
    "mtlm::loss": "loss",
    "mtlm::clip": "gradient clipping",
    "mtlm::optimizer": "optimizer",
}
FRAMEWORK = "framework (Python, dispatch, autograd engine)"
OTHER = "other elementwise work and copies (residual adds, reshapes)"
_NODE = "autograd::engine::evaluate_function: "


def phase(name: str) -> contextlib.AbstractContextManager:
    """A step phase (`loss`, `clip`, `optimizer`) as the profile names it."""
    return record_function(f"mtlm::{name}")


def _module_scope(module: nn.Module) -> str | None:
    kind = type(module).__name__
    if isinstance(module, nn.Dropout):
        return "dropout"
    if isinstance(module, nn.LayerNorm):
        return "layer norm"
    if kind in ("GELUActivation", "GELU"):
        return "GELU"
    if kind.endswith("Embeddings"):
        return "embedding"
    if kind.endswith("SelfAttention"):
        return "attention"
    return None


@contextlib.contextmanager
def _module_scopes(model: nn.Module) -> Iterator[None]:
    """Every module whose kind names its work runs inside a profiler scope of that name, as do
    a multi-task model's heads."""
    scoped = [(module, _module_scope(module)) for module in model.modules()]
    heads = getattr(model, "heads", {})
    scoped += [(head, "heads") for head in getattr(heads, "values", list)()]
    handles = []
    for module, scope in scoped:
        if scope is None:
            continue
        open_scopes: list[Any] = []

        def enter(_module, _inputs, scope=scope, open_scopes=open_scopes):
            open_scopes.append(record_function(f"mtlm::{scope}").__enter__())

        def leave(_module, _inputs, _output, open_scopes=open_scopes):
            open_scopes.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _chain(event: Any) -> list[Any]:
    """The event and its enclosing events, innermost first."""
    chain = []
    while event is not None:
        chain.append(event)
        event = event.cpu_parent
    return chain


def categorize(events: list[Any]) -> Counter:
    """Self CPU microseconds by kind of work."""
    # A backward operation is named by the forward operation its autograd node belongs to
    # (they share a sequence number): the innermost forward event holding that number.
    forward: dict[int, list[str]] = {}
    for event in events:
        if event.sequence_nr < 0 or event.name.startswith(_NODE):
            continue
        names = [e.name for e in _chain(event)]
        if not any(name.startswith(_NODE) for name in names):
            if len(names) > len(forward.get(event.sequence_nr, ())):
                forward[event.sequence_nr] = names
    shares: Counter = Counter()
    for event in events:
        if event.self_cpu_time_total <= 0:
            continue
        chain = _chain(event)
        names = [e.name for e in chain]
        node = next((e for e in chain if e.name.startswith(_NODE)), None)
        if node is not None:
            names += [node.name.removeprefix(_NODE), *forward.get(node.sequence_nr, [])]
        kind = OPERATIONS.get(event.name) or next(
            (SCOPES[name] for name in names[1:] if name in SCOPES), None
        )
        if kind is None:
            framework = event.name.startswith(("mtlm::", "autograd::", "Optimizer."))
            kind = FRAMEWORK if framework or event.name.endswith("Backward0") else OTHER
        shares[kind] += event.self_cpu_time_total
    return shares


def time_shares(model: nn.Module, run: Callable[[], None]) -> dict[str, float]:
    """The share of `run()`'s self CPU time each kind of work took, largest first (`run`
    trains `model`, marking its phases with `phase`)."""
    with _module_scopes(model), profile(activities=[ProfilerActivity.CPU]) as profiler:
        run()
    shares = categorize(profiler.events())
    total = sum(shares.values())
    return {kind: round(seconds / total, 4) for kind, seconds in shares.most_common()}


# --- the model's matrix products alone ---------------------------------------------------------
class Operand(NamedTuple):
    """A tensor argument as a matrix product saw it."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype


class GemmCall(NamedTuple):
    """One matrix product: the operation, its arguments (operands and scalars)."""

    operation: Any
    arguments: tuple[Any, ...]
    options: tuple[tuple[str, Any], ...]

    def flops(self) -> int:
        """Multiply-adds × 2."""
        left, right = [a.shape for a in self.arguments if isinstance(a, Operand)][-2:]
        return 2 * left[-2] * left[-1] * right[-1] * (left[0] if len(left) == 3 else 1)

    def operands(self) -> list[Any]:
        """Random arguments of the recorded shapes, strides and dtype."""
        return [_random(a) if isinstance(a, Operand) else a for a in self.arguments]


def _random(operand: Operand) -> torch.Tensor:
    """Random values laid out as `operand` (strides of 0 included: a broadcast gradient)."""
    extents = zip(operand.shape, operand.stride, strict=True)
    size = 1 + sum((length - 1) * step for length, step in extents)
    values = torch.randn(size).to(operand.dtype)
    return values.as_strided(operand.shape, operand.stride)


_GEMM_OPERATIONS = {"mm", "addmm", "bmm", "baddbmm"}


class _GemmRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._overloadpacket.__name__ in _GEMM_OPERATIONS:
            arguments = tuple(
                Operand(tuple(a.shape), a.stride(), a.dtype) if isinstance(a, torch.Tensor) else a
                for a in args
            )
            self.calls[GemmCall(func, arguments, tuple(sorted((kwargs or {}).items())))] += 1
        return func(*args, **(kwargs or {}))


def gemm_calls(run: Callable[[], None]) -> Counter:
    """Every matrix product `run()` computes (forward and backward), with how often."""
    recorder = _GemmRecorder()
    with recorder:
        run()
    return recorder.calls


def gemm_seconds(calls: Counter) -> float:
    """The time the recorded matrix products take alone, each as often as recorded, on
    operands made once per shape (a warm-up call each, outside the clock)."""
    seconds = 0.0
    for call, count in calls.items():
        operands, options = call.operands(), dict(call.options)
        call.operation(*operands, **options)
        started = time.perf_counter()
        for _ in range(count):
            call.operation(*operands, **options)
        seconds += time.perf_counter() - started
    return seconds
