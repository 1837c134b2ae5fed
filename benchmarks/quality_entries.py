"""The entries of the methods-quality benchmark: each is the suite's config with a few keys
changed, and the rows the table derives from them."""

from __future__ import annotations

from typing import Any


def _joint(balancer: str) -> dict[str, Any]:
    """Joint steps balanced by `balancer`. A joint step spends a batch of every task on one
    optimizer step, so an epoch holds T = 6 times fewer steps than a sampled one: the learning
    rates are scaled by 2.5 ≈ sqrt(T) (the square-root rule for larger batches, Hoffer, Hubara
    & Soudry, 2017), without which the joint model stops far from trained on the same epochs."""
    return {
        "training": {
            "step_mode": "joint",
            "balancer": {"kind": balancer},
            "learning_rate": 2.5e-4,
            "head_learning_rate": 2.5e-3,
        }
    }


#: Config changes of each entry, merged into the suite's config.
ENTRIES: dict[str, dict[str, Any]] = {
    "single_task": {},
    "hard_temperature": {"training": {"finetune": {}}},
    # The same joint model, each task then fine-tuned on the single-task baselines' budget.
    "hard_temperature_long_finetune": {
        "training": {"finetune": {"num_epochs": 10, "early_stopping_patience": 2}}
    },
    # The joint model under the single-task baselines' rule: where the cap ended the 10-epoch
    # run, 30 epochs, and the better-validating run kept (`BUDGET_CHOICES`).
    "hard_temperature_30_epochs": {"training": {"num_epochs": 30, "finetune": {}}},
    "hard_proportional": {"training": {"sampler": {"kind": "proportional"}}},
    "static_joint": _joint("static"),
    # The same on the sampled entries' learning rates: the joint model stops far from trained.
    "static_joint_unscaled_lr": {
        "training": {"step_mode": "joint", "balancer": {"kind": "static"}}
    },
    "uncertainty": _joint("uncertainty"),
    "famo": _joint("famo"),
    "random": _joint("random"),
    "upgrad": _joint("upgrad"),
    "nash_mtl": _joint("nash_mtl"),
    "soft": {"sharing": {"kind": "soft"}},
    # Soft sharing under the same rule (`BUDGET_CHOICES`).
    "soft_30_epochs": {"sharing": {"kind": "soft"}, "training": {"num_epochs": 30}},
    # Ten times the default tie: whether a tighter pull toward the tasks' mean keeps soft
    # sharing's ner gain without its lee_similarity loss.
    "soft_strength_1e-2": {"sharing": {"kind": "soft", "strength": 1e-2}},
    "lora": {"sharing": {"kind": "lora", "r": 16, "alpha": 32, "train_base": True}},
    # `mtlm plan`'s group models (methods_quality._groups_record), fine-tuned like the joint
    # model, their epochs chosen on validation.
    "groups": {"training": {"finetune": {}}},
}
#: The two-stage row each fine-tuning entry's records give.
FINE_TUNED = {
    "hard_temperature": "two_stage",
    "hard_temperature_long_finetune": "two_stage_long",
    "hard_temperature_30_epochs": "two_stage_30_epochs",
}
#: Entries given the single-task baselines' budget rule (`mtlm.analysis.baselines`), as
#: `mtlm plan` gives its candidates: where the cap rather than early stopping ended an entry's
#: run, the better-validating of it and the longer entry's run is kept. The kept runs give the
#: `EPOCHS_BY_VALIDATION` rows: each entry's, its fine-tune's and each plan's.
BUDGET_CHOICES = {
    "hard_temperature": "hard_temperature_30_epochs",
    "soft": "soft_30_epochs",
}
EPOCHS_BY_VALIDATION = " (epochs by validation)"
#: Entries with no row of their own: one whose multi-task stage is another entry's (same
#: config, same seed) gives only its two-stage row; the group models score only the tasks of
#: their groups and enter the plan rows only.
WITHOUT_A_ROW = ("hard_temperature_long_finetune", "groups")
#: The plan rows: `mtlm plan`'s rule (per task, the candidate with the best validation score,
#: the single-task model unless another beats it) over single-task, hard_temperature and its
#: fine-tune, plus the entries named here and their fine-tunes (`mtlm plan --sharing soft`
#: offers a soft model).
PLANS: dict[str, tuple[str, ...]] = {
    "plan": (),
    "plan + lora": ("lora",),
    "plan + soft": ("soft",),
    "plan + soft λ=1e-2": ("soft_strength_1e-2",),
}
#: Plan rows rendered under the epoch-budget rule only, because their group models are chosen
#: by it (`mtlm plan`'s default, which adds the group models of 2 groups).
RULED_PLANS: dict[str, tuple[str, ...]] = {
    "plan + groups": ("groups",),
    "plan + groups + soft": ("groups", "soft"),
}
#: Entries not trained on a suite because another entry's run is theirs: (suite, entry) ->
#: (that entry, why). On the full suite every task has 300 training rows, so proportional
#: sampling draws exactly the tasks that temperature sampling draws
#: (tests/training/test_samplers.py).
SAME_AS = {
    ("suite", "hard_proportional"): (
        "hard_temperature",
        "every task has 300 training rows, so proportional sampling draws the tasks that "
        "temperature sampling draws",
    )
}
#: Diagnostics of one suite's results, not methods: run on that suite only.
SUITE_ONLY = {
    "hard_temperature_long_finetune": "suite",
    "static_joint_unscaled_lr": "suite",
    # The full suite's question: there soft sharing loses lee_similarity.
    "soft_strength_1e-2": "suite",
}


def runs_on(suite: str, entry: str) -> bool:
    """Whether `entry` is trained on `suite` (not another entry's run, nor another suite's
    diagnostic)."""
    return (suite, entry) not in SAME_AS and SUITE_ONLY.get(entry, suite) == suite


#: The row the others are tested against.
REFERENCE = "static_joint"
