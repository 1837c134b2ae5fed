"""MultiTaskPipeline: every head of a saved model, or of a plan's routed models, on raw texts.

Where a `transformers.pipeline` serves one model, this serves all of a model's tasks at once,
through the path `MultiTaskModel.predict` takes (`mtlm.inference`): under hard sharing each
batch goes through the encoder once for every head that reads the same tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtlm.devices import DeviceLike, DeviceMap, resolve_device
from mtlm.errors import ConfigError, DataError
from mtlm.inference import predict_inputs
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.modeling.routed_model import RoutedModel, load_model
from mtlm.tasks.classification import Classification
from mtlm.tasks.regression import Regression
from mtlm.tasks.token_classification import TokenClassification


class MultiTaskPipeline:
    """Predictions of several tasks (classification, regression, token_classification) for
    texts or text pairs, the very ones `MultiTaskModel.predict` gives.

    Texts go to every single-text task: sequence tasks read the text, token-classification
    tasks its whitespace-separated words. (text, pair) tuples go to the text-pair tasks. Each
    task tokenizes its input as in training, up to its own `max_length`. In each batch the
    heads of tasks that share an encoder and read the same tokens (the same `max_length`, and a
    tokenizer that splits a text as it splits its words) read one pass of it: once for all of
    them under hard sharing; under soft and LoRA sharing every task has an encoder of its own
    (its `sharing.pass_key`). A plan's model folder (`mtlm plan`) answers each task with the
    model routed to it.

    Batches are sorted by length and padded to their longest input; results come back in
    input order.

    `device` is where the model runs, as a `transformers.pipeline` takes it (an index, a name
    such as "cuda:0", or a torch.device; see `mtlm.devices`): a model loaded from a path goes
    there (by default the accelerator if there is one, else the CPU), and a model given is
    moved there if a device is given. `device_map` (for a path) spreads the backbone's layers
    over devices as transformers' `from_pretrained` does, for a model larger than one, and
    `offload_folder` keeps the layers it sends to disk.
    """

    def __init__(
        self,
        model: MultiTaskModel | RoutedModel | str | Path,
        tasks: list[str] | None = None,
        batch_size: int = 32,
        device: DeviceLike = None,
        device_map: DeviceMap = None,
        offload_folder: str | Path | None = None,
    ) -> None:
        if isinstance(model, MultiTaskModel | RoutedModel):
            if device_map is not None or offload_folder is not None:
                given = "device_map" if device_map is not None else "offload_folder"
                raise ConfigError(
                    f"{given}: places a model loaded from a path; move a loaded model with device"
                )
            if device is not None:
                model.to(resolve_device(device, "device"))
            self.model = model
        else:
            self.model = load_model(model, device, device_map, offload_folder)
        servable = [
            name
            for name, task in self.model.tasks.items()
            if isinstance(task, Classification | Regression | TokenClassification)
        ]
        names = servable if tasks is None else list(tasks)
        unknown = [name for name in names if name not in self.model.tasks]
        if unknown:
            raise ConfigError(
                f"tasks: no task {unknown[0]!r} in the model (tasks: {', '.join(self.model.tasks)})"
            )
        unserved = [name for name in names if name not in servable]
        if unserved:
            kind = self.model.tasks[unserved[0]].name
            raise ConfigError(
                f"tasks: {unserved[0]!r} is a {kind} task; the pipeline serves classification, "
                "regression and token_classification"
            )
        if not names:
            raise ConfigError("tasks: no task to serve")
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be at least 1 (got {batch_size})")
        models = self.model.models.values() if isinstance(self.model, RoutedModel) else [self.model]
        if any(served.tokenizer is None for served in models):
            raise ConfigError("model: the model has no tokenizer")
        self.pair_tasks = [
            name
            for name in names
            if not isinstance(self.model.tasks[name], TokenClassification)
            and self.model.tasks[name].spec.text_pair_column
        ]
        self.text_tasks = [n for n in names if n not in self.pair_tasks]
        self.batch_size = batch_size

    def __call__(
        self, inputs: str | Sequence[str] | Sequence[tuple[str, str]]
    ) -> dict[str, list[Any]]:
        """`{task: [prediction per input]}`: every served single-text task's predictions for
        texts, every served pair task's for (text, pair) tuples."""
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        if not items:
            raise ConfigError("inputs: empty; give a text, a list of texts or of (text, pair)")
        if all(isinstance(item, str) for item in items):
            names, what = self.text_tasks, "texts"
        elif all(_is_pair(item) for item in items):
            names, what = self.pair_tasks, "text pairs"
        else:
            raise ConfigError(
                "inputs: give texts or (text, pair) tuples, not a mix or other values"
            )
        if not names:
            raise ConfigError(f"inputs: no served task reads {what}")
        for index, item in enumerate(items):
            if any(not text.strip() for text in ([item] if isinstance(item, str) else item)):
                raise DataError(f"input {index + 1}: empty text")
        words = [text.split() for text in items] if what == "texts" else []
        return self._predict(
            {
                name: words if isinstance(self.model.tasks[name], TokenClassification) else items
                for name in names
            }
        )

    def _predict(self, inputs: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        if isinstance(self.model, RoutedModel):
            return self.model.predict_inputs(inputs, self.batch_size)
        return predict_inputs(self.model, inputs, self.batch_size)


def _is_pair(item: Any) -> bool:
    return (
        isinstance(item, tuple | list)
        and len(item) == 2
        and all(isinstance(text, str) for text in item)
    )
