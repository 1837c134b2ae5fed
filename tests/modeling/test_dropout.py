"""The cheap-mask dropout: the same distribution as torch's, and a drop-in module."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertModel

from mtlm.modeling.dropout import CheapMaskDropout, dropout, keep_mask, use_cheap_masks


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.25])
def test_the_mask_keeps_each_element_with_the_keep_probability(keep: float) -> None:
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([101, 997]), keep, torch.device("cpu"))  # not a multiple of 4
    assert mask.shape == (101, 997) and mask.dtype == torch.bool
    assert mask.float().mean().item() == pytest.approx(keep, abs=0.005)
    # Each of the four 16-bit lanes of a draw is uniform on its own (no biased sign bit).
    lanes = mask.flatten()[:100_000].view(-1, 4).float().mean(dim=0)
    assert torch.allclose(lanes, torch.full((4,), keep), atol=0.01)


def test_masks_follow_the_seed() -> None:
    shape = torch.Size([64, 64])
    torch.manual_seed(3)
    first = keep_mask(shape, 0.9, torch.device("cpu"))
    torch.manual_seed(3)
    assert torch.equal(keep_mask(shape, 0.9, torch.device("cpu")), first)
    assert not torch.equal(keep_mask(shape, 0.9, torch.device("cpu")), first)


def test_dropout_zeroes_and_rescales_like_torch() -> None:
    torch.manual_seed(0)
    inputs = torch.rand(200, 300) + 1.0  # no zeros of its own
    inputs.requires_grad_(True)
    outputs = dropout(inputs, 0.2, training=True)
    kept = outputs != 0
    assert kept.float().mean().item() == pytest.approx(0.8, abs=0.01)
    assert torch.allclose(outputs[kept], inputs[kept] / 0.8)
    outputs.sum().backward()
    assert torch.allclose(inputs.grad, kept.float() / 0.8)
    assert dropout(inputs, 0.2, training=False) is inputs
    assert torch.count_nonzero(dropout(inputs, 1.0, training=True)) == 0


def test_every_plain_dropout_of_a_model_is_replaced_and_outputs_in_eval_are_unchanged(
    tiny_model_dir,
) -> None:
    model = BertModel.from_pretrained(tiny_model_dir).eval()
    probabilities = sorted(m.p for m in model.modules() if type(m) is nn.Dropout)
    inputs = {"input_ids": torch.tensor([[2, 5, 6, 7, 3]])}
    before = model(**inputs).last_hidden_state
    keys = set(model.state_dict())
    use_cheap_masks(model)
    assert not any(type(m) is nn.Dropout for m in model.modules())
    swapped = sorted(m.p for m in model.modules() if isinstance(m, CheapMaskDropout))
    assert swapped == probabilities and swapped
    assert set(model.state_dict()) == keys
    assert torch.equal(model(**inputs).last_hidden_state, before)
    model.train()
    assert not torch.equal(model(**inputs).last_hidden_state, before)
