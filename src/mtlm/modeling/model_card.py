"""The model card (`README.md`) of a saved model, as the Hub reads it: a metadata block (base
model, tasks, datasets, scores) and a page saying what the model does and how to load it.

Cards are rendered from what the model folder already holds (`mtlm_config.json`, and the
run's `eval_results.json` when there is one), so that `mtlm push` can render one again with
the repository's name without loading the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from mtlm.bundled import hub_origin
from mtlm.config import saved_task_spec
from mtlm.files import write_text
from mtlm.tasks import KINDS

CARD_FILE = "README.md"
LIBRARY = "mtlm"


def multitask_card(
    described: dict[str, Any], model_id: str, results: dict[str, Any] | None = None
) -> ModelCard:
    """The card of a multi-task model: `described` is its `mtlm_config.json`, `model_id` the
    name it is loaded by (a Hub repository or a folder), `results` its `eval_results.json`."""
    tasks = [entry["spec"] for entry in described["tasks"]]
    states = {entry["spec"]["name"]: entry["state"] for entry in described["tasks"]}
    kinds = {spec["name"]: KINDS[spec["kind"]] for spec in tasks}
    base = described.get("base_model")
    sharing = described.get("sharing", {}).get("kind", "hard")
    data = ModelCardData(
        library_name=LIBRARY,
        base_model=hub_origin(base) if base else None,
        datasets=_datasets(tasks) or None,
        tags=sorted({LIBRARY, "multi-task", *(kind.hub_task for kind in kinds.values())}),
        model_name=model_id,
        eval_results=_eval_results(tasks, kinds, results) or None,
    )
    scores = (results or {}).get("tasks", {})
    split = (results or {}).get("split")
    rows = ["| task | kind | outputs | primary metric | " + (f"{split} score |" if scores else "")]
    rows.append("|---|---|---|---|" + ("---|" if scores else ""))
    for spec in tasks:
        name = spec["name"]
        metric = scores.get(name, {}).get("primary") or _primary_metric(spec, states[name])
        row = f"| {name} | {spec['kind']} | {_outputs(states[name])} | {metric} |"
        if scores:
            value = scores.get(name, {}).get(metric)
            row += f" {value:.4f} |" if isinstance(value, float) else " - |"
        rows.append(row)
    first = tasks[0]["name"]
    return _card(
        data,
        model_id,
        [
            f"A multi-task model trained with [mtlm](https://pypi.org/project/mtlm/): "
            f"{len(tasks)} task{'s' if len(tasks) > 1 else ''} on "
            f"{_base_words(base)} with {sharing} sharing "
            f"({_SHARING_WORDS.get(sharing, sharing)}).",
            "",
            *rows,
            "",
            "## Use it",
            "",
            "```python",
            "from mtlm import MultiTaskModel",
            "",
            f'model = MultiTaskModel.from_pretrained("{model_id}")',
            f'model.predict("{first}", ["an input text"])',
            "```",
            "",
            "From the command line, in a local copy of this model: `mtlm predict --model "
            "FOLDER --task all --input rows.jsonl` predicts every task, and `mtlm export "
            "--model FOLDER --task TASK --out EXPORTED` writes one task as a plain "
            "transformers model.",
            "",
        ],
    )


def exported_card(
    spec: dict[str, Any], state: dict[str, Any], base_model: str | None, model_id: str
) -> ModelCard:
    """The card of one task exported as a plain transformers model: `spec` and `state` are the
    task's as `mtlm_config.json` holds them."""
    kind = KINDS[spec["kind"]]
    data = ModelCardData(
        library_name="transformers",
        base_model=hub_origin(base_model) if base_model else None,
        datasets=_datasets([spec]) or None,
        tags=[LIBRARY],
        pipeline_tag=kind.hub_task,
        model_name=model_id,
    )
    return _card(
        data,
        model_id,
        [
            f"Task `{spec['name']}` ({spec['kind']}, outputs: {_outputs(state)}) "
            f"of a multi-task model trained with [mtlm](https://pypi.org/project/mtlm/) on "
            f"{_base_words(base_model)}, exported as a plain transformers model.",
            "",
            "```python",
            "from transformers import pipeline",
            "",
            f'task = pipeline("{kind.hub_task}", model="{model_id}")',
            "```",
            "",
        ],
    )


def _card(data: ModelCardData, model_id: str, body: list[str]) -> ModelCard:
    """A card: the metadata block, the model's name as its title, then `body`'s lines."""
    return ModelCard("\n".join(["---", data.to_yaml(), "---", "", f"# {model_id}", "", *body]))


def write_card(folder: Path, card: ModelCard) -> None:
    """Write `card` as the folder's README.md, atomically."""
    write_text(folder / CARD_FILE, str(card))


_SHARING_WORDS = {
    "hard": "one encoder shared by every task, a head per task",
    "soft": "one encoder per task, tied toward their mean",
    "lora": "one frozen base and a LoRA adapter per task",
}


def _primary_metric(spec: dict[str, Any], state: dict[str, Any]) -> str:
    task = saved_task_spec(spec, f"tasks[{spec.get('name')}]")
    return KINDS[task.kind](task, state).primary_metric


def _base_words(base: str | None) -> str:
    origin = hub_origin(base) if base else None
    if origin:
        return f"[{origin}](https://huggingface.co/{origin})"
    return f"`{base}`" if base else "a pretrained model"


def _outputs(state: dict[str, Any]) -> str:
    labels = state.get("label_names")
    if labels:
        shown = ", ".join(str(label) for label in labels[:8])
        return shown + (f", ... ({len(labels)} labels)" if len(labels) > 8 else "")
    return "a number" if "mean" in state else "text"


def _datasets(tasks: list[dict[str, Any]]) -> list[str]:
    """The Hub datasets the tasks read (local files have no name to give)."""
    return sorted({spec["data"]["hub"] for spec in tasks if spec.get("data", {}).get("hub")})


def _eval_results(
    tasks: list[dict[str, Any]], kinds: dict[str, Any], results: dict[str, Any] | None
) -> list[EvalResult]:
    if not results:
        return []
    found = []
    for spec in tasks:
        scores = results.get("tasks", {}).get(spec["name"])
        if not scores or not isinstance(scores.get(scores.get("primary")), int | float):
            continue
        metric = scores["primary"]
        found.append(
            EvalResult(
                task_type=kinds[spec["name"]].hub_task,
                task_name=spec["name"],
                dataset_type=spec.get("data", {}).get("hub") or spec["name"],
                dataset_name=spec["name"],
                dataset_split=results.get("split"),
                metric_type=metric,
                metric_value=float(scores[metric]),
            )
        )
    return found
