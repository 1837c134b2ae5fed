"""Balancers, by the name a config uses for them: the one list of balancers.

A balancer is one module, with its options (a `BalancerSpec` subclass) and its behaviour (a
`Balancer`), and one line below. Three families share most of their code: loss weightings
(`loss_weighting.py`, a torchjd scalarizer each), gradient aggregations (`aggregation.py`, a
torchjd aggregator each) and GradNorm.
"""

from mtlm.errors import ConfigError
from mtlm.training.balancers.aligned_mtl import AlignedMTL
from mtlm.training.balancers.base import (
    Balanced,
    Balancer,
    BalancerSpec,
    JointStep,
    cosine_matrix,
)
from mtlm.training.balancers.cagrad import CAGrad
from mtlm.training.balancers.conflict_free import ConFIG
from mtlm.training.balancers.dualproj import DualProj
from mtlm.training.balancers.dwa import DWA
from mtlm.training.balancers.famo import FAMO
from mtlm.training.balancers.geometric_mean import GeometricMean
from mtlm.training.balancers.graddrop import GradDrop
from mtlm.training.balancers.gradnorm import GradNorm
from mtlm.training.balancers.gradvac import GradVac
from mtlm.training.balancers.imtl_g import IMTLG
from mtlm.training.balancers.imtl_l import IMTLL
from mtlm.training.balancers.mgda import MGDA
from mtlm.training.balancers.nash_mtl import NashMTL
from mtlm.training.balancers.pcgrad import PCGrad
from mtlm.training.balancers.rlw import RandomWeights
from mtlm.training.balancers.static import Static
from mtlm.training.balancers.stch import STCH
from mtlm.training.balancers.uncertainty import Uncertainty
from mtlm.training.balancers.upgrad import UPGrad

BALANCERS: dict[str, type[Balancer]] = {
    balancer.name: balancer
    for balancer in (
        Static,
        Uncertainty,
        DWA,
        RandomWeights,
        FAMO,
        IMTLL,
        GeometricMean,
        STCH,
        GradNorm,
        PCGrad,
        UPGrad,
        MGDA,
        CAGrad,
        NashMTL,
        IMTLG,
        AlignedMTL,
        DualProj,
        GradDrop,
        GradVac,
        ConFIG,
    )
}


def build_balancer(spec: BalancerSpec, tasks: int) -> Balancer:
    """The balancer a config names, for `tasks` tasks; a method that needs a package which is
    not installed (cvxpy for Nash-MTL) is a ConfigError naming the key."""
    try:
        return BALANCERS[spec.kind](spec, tasks)
    except ImportError as error:
        raise ConfigError(f"training.balancer.kind: {spec.kind}: {error}") from None


__all__ = [
    "BALANCERS",
    "Balanced",
    "Balancer",
    "BalancerSpec",
    "JointStep",
    "build_balancer",
    "cosine_matrix",
]
