"""mtlm's parts under other training loops: `transformers.Trainer` (`hf_trainer`)."""
