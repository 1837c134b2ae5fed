"""Samplers, by the name a config uses for them: the one list of samplers.

A sampler is one module, with its options (a `SamplerSpec` subclass) and its behaviour (a
`Sampler`), and one line below.
"""

from mtlm.training.samplers.annealed import Annealed
from mtlm.training.samplers.base import Sampler, SamplerSpec
from mtlm.training.samplers.dynamic import Dynamic
from mtlm.training.samplers.proportional import Proportional
from mtlm.training.samplers.round_robin import RoundRobin
from mtlm.training.samplers.temperature import Temperature
from mtlm.training.samplers.uniform import Uniform

SAMPLERS: dict[str, type[Sampler]] = {
    sampler.name: sampler
    for sampler in (Proportional, Uniform, Temperature, Annealed, RoundRobin, Dynamic)
}


def build_sampler(sizes: dict[str, int], spec: SamplerSpec, seed: int) -> Sampler:
    """The sampler a config names, over tasks of the given training sizes."""
    return SAMPLERS[spec.kind](sizes, spec, seed)


__all__ = ["SAMPLERS", "Sampler", "SamplerSpec", "build_sampler"]
