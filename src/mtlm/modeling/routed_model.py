"""A model folder that routes each task to the model chosen for it (what `mtlm plan` writes).

The folder holds the chosen models, each a plain mtlm model folder, and `routing.json`, which
maps every task to one of them. Tasks routed to the same model share its backbone passes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtlm.devices import DeviceLike, DeviceMap, placement, resolve_device
from mtlm.errors import ConfigError
from mtlm.inference import predict_inputs
from mtlm.modeling.multitask_model import MultiTaskModel

ROUTING_FILE = "routing.json"


class RoutedModel:
    """Several MultiTaskModels behind one `predict`, each task answered by its own."""

    def __init__(self, models: dict[str, MultiTaskModel], routing: dict[str, str]) -> None:
        self.models = models
        self.routing = routing
        self.tasks = {task: models[name].tasks[task] for task, name in routing.items()}

    @staticmethod
    def is_routed(directory: str | Path) -> bool:
        """Whether `directory` (or its model/ folder) holds a routing file."""
        directory = Path(directory)
        return (directory / ROUTING_FILE).is_file() or (
            directory / "model" / ROUTING_FILE
        ).is_file()

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: DeviceLike = None,
        device_map: DeviceMap = None,
        offload_folder: str | Path | None = None,
    ) -> RoutedModel:
        """Load every model the routing file names, each on `device` or placed by
        `device_map` (as `MultiTaskModel.from_pretrained` takes them; each model offloads to
        a subfolder of `offload_folder` named as the model)."""
        if placement(device_map, offload_folder) is None:
            device = resolve_device(device, "device")
        directory = Path(directory)
        if not (directory / ROUTING_FILE).is_file():
            directory = directory / "model"
        routing_file = directory / ROUTING_FILE
        try:
            routing = json.loads(routing_file.read_text())["tasks"]
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"{routing_file}: not a routing file ({error})") from None
        models = {
            name: MultiTaskModel.from_pretrained(
                directory / name,
                device,
                device_map,
                None if offload_folder is None else Path(offload_folder) / name,
            )
            for name in set(routing.values())
        }
        for task, name in routing.items():
            if task not in models[name].tasks:
                raise ConfigError(f"{routing_file}: {name} has no task {task!r}")
        return cls(models, routing)

    def to(self, device: DeviceLike) -> RoutedModel:
        """Every model moved to `device` (see `mtlm.devices`)."""
        target = resolve_device(device, "device")
        for model in self.models.values():
            model.to(target)
        return self

    def parts(self) -> list[tuple[MultiTaskModel, list[str]]]:
        """Each model with the tasks routed to it."""
        return [
            (model, [task for task, routed in self.routing.items() if routed == name])
            for name, model in self.models.items()
        ]

    def predict(
        self, task: str | Sequence[str], inputs: Sequence[Any], batch_size: int = 32
    ) -> list[Any] | dict[str, list[Any]]:
        """As `MultiTaskModel.predict`: one task's list, or a dict of lists for several."""
        names = [task] if isinstance(task, str) else list(task)
        predicted = self.predict_inputs(dict.fromkeys(names, inputs), batch_size)
        return predicted[task] if isinstance(task, str) else predicted

    def predict_inputs(
        self, inputs: Mapping[str, Sequence[Any]], batch_size: int = 32
    ) -> dict[str, list[Any]]:
        """Each named task's predictions for its inputs, from the model it is routed to."""
        predicted: dict[str, list[Any]] = {}
        for model, routed in self.parts():
            mine = {name: given for name, given in inputs.items() if name in routed}
            if mine:
                predicted.update(predict_inputs(model, mine, batch_size))
        return {name: predicted[name] for name in inputs}


def load_model(
    directory: str | Path,
    device: DeviceLike = None,
    device_map: DeviceMap = None,
    offload_folder: str | Path | None = None,
) -> MultiTaskModel | RoutedModel:
    """A saved MultiTaskModel, or the RoutedModel of a plan's model folder, on `device` or
    placed by `device_map` (see `MultiTaskModel.from_pretrained`)."""
    if RoutedModel.is_routed(directory):
        return RoutedModel.from_pretrained(directory, device, device_map, offload_folder)
    return MultiTaskModel.from_pretrained(directory, device, device_map, offload_folder)
