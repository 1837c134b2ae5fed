"""mtlm's parts under other training loops: `transformers.Trainer` (`hf_trainer`) and
Lightning (`lightning`, an optional extra)."""
