"""Throughput peer: one plain Hugging Face model per task, trained with the `Trainer`, one
task after another, as a user without a multi-task tool would.

Dynamic padding (`DataCollatorWithPadding` / `DataCollatorForTokenClassification`), the
Trainer's defaults otherwise (fused AdamW, linear schedule); tagging labels on the first
sub-word of each word.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from counting import TokenCounter, peak_rss_mb


def run_hf_trainer(workload_path: Path, precision: str = "no") -> dict:
    """One plain model per task, trained with the Hugging Face Trainer, one after another, on
    the workload's device, under bf16 autocast with `precision` "bf16"."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    workload = json.loads(workload_path.read_text())
    torch.set_num_threads(workload["threads"])
    tokenizer = AutoTokenizer.from_pretrained(workload["model"])
    counter, seconds, steps = TokenCounter(), 0.0, 0
    for task in workload["tasks"]:
        rows = [json.loads(line) for line in open(task["train"], encoding="utf-8")]
        tagging = task["kind"] == "token_classification"
        if tagging:
            model = AutoModelForTokenClassification.from_pretrained(
                workload["model"], num_labels=len(task["labels"])
            )
            dataset = _tagging_dataset(rows, task, tokenizer)
            collator = DataCollatorForTokenClassification(tokenizer)
        else:
            regression = task["kind"] == "regression"
            model = AutoModelForSequenceClassification.from_pretrained(
                workload["model"],
                num_labels=1 if regression else len(task["labels"]),
                problem_type="regression" if regression else "single_label_classification",
            )
            labels = {name: index for index, name in enumerate(task.get("labels", []))}
            encoded = tokenizer(
                [row["text"] for row in rows], truncation=True, max_length=task["max_length"]
            )
            encoded["labels"] = [
                float(row["label"]) if regression else labels[row["label"]] for row in rows
            ]
            dataset = Dataset.from_dict(dict(encoded))
            collator = DataCollatorWithPadding(tokenizer)
        with tempfile.TemporaryDirectory() as output:
            arguments = TrainingArguments(
                output_dir=output,
                per_device_train_batch_size=workload["batch_size"],
                num_train_epochs=1,
                learning_rate=workload["learning_rate"],
                seed=workload["seed"],
                save_strategy="no",
                eval_strategy="no",
                logging_strategy="no",
                report_to=[],
                use_cpu=workload.get("device", "cpu") == "cpu",
                bf16=precision == "bf16",
                disable_tqdm=True,
            )
            trainer = Trainer(
                model=model, args=arguments, train_dataset=dataset, data_collator=collator
            )
            counter.watch(model)
            started = time.perf_counter()
            trainer.train()
            seconds += time.perf_counter() - started
        steps += trainer.state.global_step
    return counter.figures(seconds) | {
        "name": "HF Trainer, one task at a time" + (" (bf16)" if precision == "bf16" else ""),
        "transformers_version": __import__("transformers").__version__,
        "optimizer_steps": steps,
        "peak_rss_mb": peak_rss_mb(),
    }


def _tagging_dataset(rows: list[dict], task: dict, tokenizer):
    """Words to sub-words; the first sub-word of a word carries its tag, the rest -100 (the
    usual Hugging Face recipe)."""
    from datasets import Dataset

    labels = {name: index for index, name in enumerate(task["labels"])}
    encoded = tokenizer(
        [row["tokens"] for row in rows],
        is_split_into_words=True,
        truncation=True,
        max_length=task["max_length"],
    )
    aligned = []
    for index, row in enumerate(rows):
        previous, tags = None, []
        for word in encoded.word_ids(index):
            first = word is not None and word != previous
            tags.append(labels[row["tags"][word]] if first else -100)
            previous = word
        aligned.append(tags)
    encoded["labels"] = aligned
    return Dataset.from_dict(dict(encoded))
