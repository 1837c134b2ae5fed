"""Proportional sampling: each task as often as its share of the training examples."""

from __future__ import annotations

from typing import Literal

from mtlm.training.samplers.base import SizeSampler, SizeSpec


class ProportionalSpec(SizeSpec):
    """p_i ∝ min(N_i, size_cap)."""

    kind: Literal["proportional"]


class Proportional(SizeSampler):
    """p_i ∝ min(N_i, size_cap): every example about equally often, as one mixed dataset."""

    name = "proportional"
    options = ProportionalSpec
