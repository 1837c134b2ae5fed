"""A model folder that routes each task to the model chosen for it (what `mtlm plan` writes).

The folder holds the chosen models, each a plain mtlm model folder, and `routing.json`, which
maps every task to one of them. Tasks routed to the same model share its backbone passes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtlm.errors import ConfigError
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
    def from_pretrained(cls, directory: str | Path) -> RoutedModel:
        """Load every model the routing file names."""
        directory = Path(directory)
        if not (directory / ROUTING_FILE).is_file():
            directory = directory / "model"
        routing_file = directory / ROUTING_FILE
        try:
            routing = json.loads(routing_file.read_text())["tasks"]
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"{routing_file}: not a routing file ({error})") from None
        models = {
            name: MultiTaskModel.from_pretrained(directory / name) for name in set(routing.values())
        }
        for task, name in routing.items():
            if task not in models[name].tasks:
                raise ConfigError(f"{routing_file}: {name} has no task {task!r}")
        return cls(models, routing)

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
        if isinstance(task, str):
            return self.models[self.routing[task]].predict(task, inputs, batch_size)
        out: dict[str, list[Any]] = {}
        for model, routed in self.parts():
            mine = [t for t in task if t in routed]
            if mine:
                out.update(model.predict(mine, inputs, batch_size))
        return {t: out[t] for t in task}
