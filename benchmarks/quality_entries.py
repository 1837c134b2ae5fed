"""The entries of the methods-quality benchmark: each is the suite's config with a few keys
changed, and the rows the table derives from them."""

from __future__ import annotations

from typing import Any

#: Config changes of each entry, merged into the suite's config.
ENTRIES: dict[str, dict[str, Any]] = {
    "single_task": {},
    "hard_temperature": {"training": {"finetune": {}}},
    # The same joint model, each task then fine-tuned on the single-task baselines' budget.
    "hard_temperature_long_finetune": {
        "training": {"finetune": {"num_epochs": 10, "early_stopping_patience": 2}}
    },
    "hard_proportional": {"training": {"sampler": {"kind": "proportional"}}},
    "static_joint": {"training": {"step_mode": "joint", "balancer": {"kind": "static"}}},
    # A joint step spends T batches on one optimizer step, so an epoch holds T times fewer
    # steps than a sampled one; the learning rates scaled by sqrt(T = 6) (Hoffer et al., 2017)
    # give the joint model a chance to converge on the same epoch budget.
    "static_joint_scaled_lr": {
        "training": {
            "step_mode": "joint",
            "balancer": {"kind": "static"},
            "learning_rate": 2.5e-4,
            "head_learning_rate": 2.5e-3,
        }
    },
    "uncertainty": {"training": {"step_mode": "joint", "balancer": {"kind": "uncertainty"}}},
    "famo": {"training": {"step_mode": "joint", "balancer": {"kind": "famo"}}},
    "random": {"training": {"step_mode": "joint", "balancer": {"kind": "random"}}},
    "upgrad": {"training": {"step_mode": "joint", "balancer": {"kind": "upgrad"}}},
    "nash_mtl": {"training": {"step_mode": "joint", "balancer": {"kind": "nash_mtl"}}},
    "soft": {"sharing": {"kind": "soft"}},
    "lora": {"sharing": {"kind": "lora", "r": 16, "alpha": 32, "train_base": True}},
}
#: The two-stage row each fine-tuning entry's records give.
FINE_TUNED = {"hard_temperature": "two_stage", "hard_temperature_long_finetune": "two_stage_long"}
#: Entries whose multi-task stage is another entry's (same config, same seed): only their
#: two-stage row is rendered.
FINE_TUNE_ONLY = ("hard_temperature_long_finetune",)
#: The row the others are tested against.
REFERENCE = "static_joint"
