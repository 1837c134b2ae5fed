"""Pooling and the sequence head's shape for each pooling."""

from __future__ import annotations

import pytest
import torch

from mtlm.config import task_spec
from mtlm.modeling.heads import SequenceHead, pool
from mtlm.tasks import KINDS

# Two rows of lengths 3 and 5 in a batch of width 5, each token's state its position + 1.
STATES = torch.arange(1.0, 6.0).repeat(2, 1).unsqueeze(-1)
RIGHT_PADDED = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
LEFT_PADDED = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])


@pytest.mark.parametrize(
    ("mask", "last"), [(RIGHT_PADDED, [3.0, 5.0]), (LEFT_PADDED, [5.0, 5.0])], ids=["right", "left"]
)
def test_last_pooling_reads_the_last_real_token_on_either_side(mask, last):
    assert pool(STATES, mask, "last").squeeze(-1).tolist() == last


def test_a_single_real_token_is_its_own_last():
    mask = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]])
    assert pool(STATES, mask, "last").squeeze(-1).tolist() == [1.0, 5.0]


def test_a_last_token_head_is_one_linear_layer_without_bias():
    head = SequenceHead(8, 3, "last", dropout=0.1)
    assert head.dense is None and head.out.bias is None
    assert SequenceHead(8, 3, "cls", dropout=0.1).out.bias is not None


@pytest.mark.parametrize(("family", "pooling"), [("encoder", "cls"), ("causal", "last")])
def test_unset_pooling_is_the_model_familys(family, pooling):
    spec = task_spec({"name": "s", "kind": "classification", "data": {"train": "x"}})
    task = KINDS["classification"](spec, {"label_names": ["a", "b"]})
    task.bind_model(family, None, 10)
    assert spec.pooling is None and task.pooling == pooling
