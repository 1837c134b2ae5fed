"""Serving the 4 demo heads at once against the 4 tasks exported as plain Hugging Face models.

Builds the demo's MultiTaskModel on the bundled encoder (heads untrained: throughput does not
depend on the weights), saves it, exports each task with `export_task`, and on the same texts
(from the tasks' test splits; the POS task reads their whitespace-separated words) times:
(a) MultiTaskPipeline serving all 4 heads, sharing the encoder pass among the heads that read
the same tokens in a batch; (b) the 4 exported models one after another, with the same batch
size, length-sorted dynamic padding and each task's max_length, under torch.inference_mode
(the fair baseline); (c) the 4 exported models through
`transformers.pipeline`, for reference. Every timing covers tokenizing and decoding too.
Prints one JSON line; with `--write` it replaces the inference section of BENCHMARKS.md.

    python benchmarks/inference.py [--texts 512] [--batch-size 32] [--write]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, write_section  # noqa: E402

THREADS = 2


def demo_texts(config: Any, count: int) -> list[str]:
    """`count` texts taken in turn from each demo task's test split (a POS row's words joined
    by spaces)."""
    from mtlm.demo.splits import demo_task_files

    columns = []
    for spec in config.tasks:
        path = demo_task_files(spec.data.bundled)["test"]
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        if spec.kind == "token_classification":
            columns.append([" ".join(row[spec.tokens_column]) for row in rows])
        else:
            columns.append([row[spec.text_column] for row in rows])
    mixed = [text for group in zip_longest(*columns) for text in group if text is not None]
    return mixed[:count]


def exported_predictions(
    models: dict[str, tuple[Any, Any, bool, int]], texts: list[str], batch_size: int
) -> dict[str, list[Any]]:
    """Each exported model over the texts in turn: length-sorted batches, padding to the
    longest in the batch, labels decoded as mtlm decodes them."""
    import torch

    results: dict[str, list[Any]] = {}
    for task, (tokenizer, model, tagging, max_length) in models.items():
        words = [text.split() for text in texts]
        encoded = tokenizer(
            words if tagging else texts,
            is_split_into_words=tagging,
            truncation=True,
            max_length=max_length,
        )
        order = sorted(range(len(texts)), key=lambda index: len(encoded["input_ids"][index]))
        names = model.config.id2label
        answers: list[Any] = [None] * len(texts)
        for start in range(0, len(texts), batch_size):
            indices = order[start : start + batch_size]
            batch = tokenizer.pad(
                {key: [values[i] for i in indices] for key, values in encoded.items()},
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = model(**batch).logits
            for row, index in zip(logits, indices, strict=True):
                if tagging:
                    best = row.argmax(-1).tolist()
                    ids, previous, tags = encoded.word_ids(index), None, []
                    for position, word in enumerate(ids):
                        if word is not None and word != previous:
                            tags.append(names[best[position]])
                        previous = word
                    answers[index] = {"tags": tags}
                elif model.config.problem_type == "regression":
                    answers[index] = {"score": float(row[0])}
                else:
                    probabilities = row.softmax(-1).tolist()
                    answers[index] = {
                        "label": names[
                            max(range(len(probabilities)), key=probabilities.__getitem__)
                        ],
                        "probabilities": dict(zip(names.values(), probabilities, strict=True)),
                    }
        results[task] = answers
    return results


def hf_pipelines(
    pipes: dict[str, Any], texts: list[str], batch_size: int, max_lengths: dict[str, int]
):
    """Each exported model through `transformers.pipeline`, in turn."""
    for task, pipe in pipes.items():
        if pipe.task == "token-classification":
            pipe(texts, batch_size=batch_size)
        else:
            pipe(texts, batch_size=batch_size, truncation=True, max_length=max_lengths[task])


def agreement(ours: dict[str, list[Any]], theirs: dict[str, list[Any]]) -> float:
    """The share of predictions whose label (or tags) agree; regression values within 1e-3."""
    same = total = 0
    for task, predictions in ours.items():
        for a, b in zip(predictions, theirs[task], strict=True):
            total += 1
            if "score" in a:
                same += abs(a["score"] - b["score"]) < 1e-3
            else:
                same += a.get("label", a.get("tags")) == b.get("label", b.get("tags"))
    return same / total


def timed(functions: dict[str, Any], repeats: int) -> dict[str, tuple[float, Any]]:
    """The best of `repeats` wall-clock times of each function and its last result; rounds
    alternate between the functions, so that a slow spell of the machine hits them alike."""
    best: dict[str, tuple[float, Any]] = {name: (float("inf"), None) for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            result = function()
            best[name] = (min(best[name][0], time.perf_counter() - started), result)
    return best


def measure(count: int, batch_size: int, repeats: int) -> dict:
    """Build, save and export the demo model, then time the three ways of serving it."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        pipeline,
    )

    from mtlm import MultiTaskModel, Trainer, load_config
    from mtlm.export import export_task
    from mtlm.pipeline import MultiTaskPipeline

    torch.set_num_threads(THREADS)
    config = load_config(ROOT / "examples" / "demo.yaml")
    texts = demo_texts(config, count)
    with tempfile.TemporaryDirectory() as scratch:
        Trainer(config, Path(scratch) / "run").model.save_pretrained(Path(scratch) / "model")
        model = MultiTaskModel.from_pretrained(Path(scratch) / "model")
        folders = {task: export_task(model, task, Path(scratch) / task) for task in model.tasks}
        serve = MultiTaskPipeline(model, batch_size=batch_size)
        max_lengths = {name: task.spec.max_length for name, task in model.tasks.items()}
        exported, pipes = {}, {}
        for task, folder in folders.items():
            tagging = model.tasks[task].name == "token_classification"
            auto = (
                AutoModelForTokenClassification if tagging else AutoModelForSequenceClassification
            )
            tokenizer = AutoTokenizer.from_pretrained(folder)
            exported[task] = (tokenizer, auto.from_pretrained(folder), tagging, max_lengths[task])
            kind = "token-classification" if tagging else "text-classification"
            pipes[task] = pipeline(kind, model=str(folder), device="cpu")

        warm = texts[: 2 * batch_size]
        serve(warm)
        exported_predictions(exported, warm, batch_size)
        hf_pipelines(pipes, warm, batch_size, max_lengths)

        runs = timed(
            {
                "a": lambda: serve(texts),
                "b": lambda: exported_predictions(exported, texts, batch_size),
            },
            repeats,
        )
        (seconds_a, ours), (seconds_b, theirs) = runs["a"], runs["b"]
        started = time.perf_counter()
        hf_pipelines(pipes, texts, batch_size, max_lengths)
        seconds_c = time.perf_counter() - started
        passes: list[int] = []
        model.sharing.backbone.register_forward_hook(lambda *args: passes.append(1))
        serve(texts)
    heads = len(folders)
    speedup = seconds_b / seconds_a
    return {
        "texts": len(texts),
        "heads": heads,
        "batch_size": batch_size,
        "max_lengths": max_lengths,
        "pipeline_passes_per_batch": round(len(passes) / math.ceil(len(texts) / batch_size), 2),
        "torch_threads": THREADS,
        "texts_per_second": {
            "multitask_pipeline": round(len(texts) / seconds_a, 1),
            "exported_one_after_another": round(len(texts) / seconds_b, 1),
            "transformers_pipeline": round(len(texts) / seconds_c, 1),
        },
        "speedup": round(speedup, 2),
        "goal": round(0.9 * heads, 2),
        "goal_met": speedup >= 0.9 * heads,
        "agreement": round(agreement(ours, theirs), 4),
    }


def table(result: dict) -> str:
    """Markdown: one row per way of serving the heads."""
    rates = result["texts_per_second"]
    base = rates["exported_one_after_another"]
    heads = result["heads"]
    rows = [
        (
            f"(a) MultiTaskPipeline, {heads} heads",
            result["pipeline_passes_per_batch"],
            rates["multitask_pipeline"],
        ),
        (f"(b) {heads} exported models, same batching", heads, base),
        (
            f"(c) {heads} exported models, transformers.pipeline",
            heads,
            rates["transformers_pipeline"],
        ),
    ]
    lines = [
        "| serving | encoder passes per batch | texts/s | × exported |",
        "|---|---|---|---|",
        *(f"| {name} | {passes} | {rate:.1f} | {rate / base:.2f} |" for name, passes, rate in rows),
    ]
    met = "met" if result["goal_met"] else "missed"
    lines.append(
        f"\nSpeed-up {result['speedup']:.2f} against the goal ≥ 0.9·{heads} = {result['goal']} "
        f"({met}); the pipeline's and the exported models' labels agree on "
        f"{100 * result['agreement']:.1f}% of the predictions."
    )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="keep the best of this many")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    result = measure(args.texts, args.batch_size, args.repeats)
    print(json.dumps(result), flush=True)
    markdown = table(result)
    print(markdown)
    if args.write:
        lengths = ", ".join(f"{task} {n}" for task, n in result["max_lengths"].items())
        intro = (
            f"the bundled MiniLM encoder with the 4 demo heads (untrained), {result['texts']} "
            f"test-split texts, batch {result['batch_size']}, each task's max_length "
            f"({lengths}), {THREADS} torch threads; best of {args.repeats} alternating runs of "
            "(a) and (b), one of transformers.pipeline; tokenizing and decoding included."
        )
        write_section(
            "inference",
            "Inference: all heads in one pass against exported single-task models",
            intro,
            markdown,
            f"python benchmarks/inference.py --texts {args.texts} --batch-size "
            f"{args.batch_size} --repeats {args.repeats} --write",
        )


if __name__ == "__main__":
    main()
