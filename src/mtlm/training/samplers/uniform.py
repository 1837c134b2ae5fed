"""Uniform sampling: every task equally often, whatever its size."""

from __future__ import annotations

from typing import Literal

from mtlm.training.samplers.base import Sampler, SamplerSpec


class UniformSpec(SamplerSpec):
    """p_i = 1/T; no options."""

    kind: Literal["uniform"]


class Uniform(Sampler):
    """p_i = 1/T."""

    name = "uniform"
    options = UniformSpec
