"""MultiTaskModel: one shared backbone (hard parameter sharing) and one head per task.

Saved as plain files that outlive library upgrades: the backbone in Hugging Face format, the
heads as safetensors, the tasks as JSON. No pickle anywhere.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mtlm.config import TaskSpec
from mtlm.errors import ConfigError
from mtlm.files import staged_directory
from mtlm.tasks import KINDS, TaskKind

MTLM_CONFIG = "mtlm_config.json"


HEADS_FILE = "heads.safetensors"
FORMAT_VERSION = 1


class TaskOutput(NamedTuple):
    """A task's head output and the backbone states it was computed from."""

    head: torch.Tensor
    hidden: torch.Tensor


class MultiTaskModel(nn.Module):
    """A pretrained backbone shared by every task, and a ModuleDict of task heads."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        tasks: dict[str, TaskKind],
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tasks = dict(tasks)
        self.tokenizer = tokenizer
        hidden_size = backbone.config.hidden_size
        self.heads = nn.ModuleDict(
            {name: task.build_head(hidden_size) for name, task in tasks.items()}
        )
        accepted = inspect.signature(backbone.forward).parameters
        self._backbone_inputs = [
            key for key in ("input_ids", "attention_mask", "token_type_ids") if key in accepted
        ]

    @classmethod
    def from_backbone(
        cls,
        name_or_path: str,
        tasks: dict[str, TaskKind],
        revision: str | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> MultiTaskModel:
        """New heads on a pretrained backbone (hub name, local folder or `bundled:<name>`)."""
        from mtlm.assets import resolve_model_name

        location = resolve_model_name(name_or_path)
        tokenizer = tokenizer or load_tokenizer(location, revision)
        try:
            backbone = AutoModel.from_pretrained(location, revision=revision, dtype=torch.float32)
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"model.name_or_path: cannot load {name_or_path!r} ({error})"
            ) from None
        return cls(backbone, tasks, tokenizer)

    # --- forward --------------------------------------------------------------------------
    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The backbone's last hidden states for a batch."""
        inputs = {key: batch[key] for key in self._backbone_inputs if key in batch}
        return self.backbone(**inputs).last_hidden_state

    def forward(
        self, task: str | Mapping[str, dict[str, torch.Tensor]], batch: dict | None = None
    ) -> torch.Tensor | dict[str, TaskOutput]:
        """The head output of one task on its batch; or, given `{task: batch}`, each task's
        head output and backbone states (one call, so that DDP sees one forward per step)."""
        if isinstance(task, str):
            return self.heads[task](self.encode(batch), batch["attention_mask"])
        outputs = {}
        for name, task_batch in task.items():
            hidden = self.encode(task_batch)
            outputs[name] = TaskOutput(
                self.heads[name](hidden, task_batch["attention_mask"]), hidden
            )
        return outputs

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Parameters of the backbone's last layer (the last block of its layer list)."""
        layer_lists = [
            m for m in self.backbone.modules() if isinstance(m, nn.ModuleList) and len(m)
        ]
        last = layer_lists[-1][-1] if layer_lists else self.backbone
        return [parameter for parameter in last.parameters() if parameter.requires_grad]

    def forward_heads(
        self, batch: dict[str, torch.Tensor], tasks: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Several heads on one backbone pass over the same inputs."""
        hidden = self.encode(batch)
        return {task: self.heads[task](hidden, batch["attention_mask"]) for task in tasks}

    def predict(
        self, task: str | Sequence[str], inputs: Sequence[Any], batch_size: int = 32
    ) -> list[Any] | dict[str, list[Any]]:
        """Decoded predictions for texts, text pairs, word lists or rows.

        With one task name, a list with one prediction per input; with several, a dict of such
        lists, sharing one backbone pass among tasks that read the same inputs.
        """
        from mtlm.inference import predict_rows

        if isinstance(task, str):
            return predict_rows(self, [task], inputs, batch_size)[task]
        return predict_rows(self, list(task), inputs, batch_size)

    # --- saving ---------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Write the model to `directory` atomically: backbone, tokenizer, heads, task config."""
        with staged_directory(Path(directory)) as staging:
            self.backbone.save_pretrained(staging)
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(staging)
            heads = {
                key: value.detach().contiguous() for key, value in self.heads.state_dict().items()
            }
            save_file(heads, staging / HEADS_FILE)
            (staging / MTLM_CONFIG).write_text(json.dumps(self.describe(), indent=2))

    def describe(self) -> dict[str, Any]:
        """What `from_pretrained` needs besides the weights: tasks, their kinds and state."""
        return {
            "format_version": FORMAT_VERSION,
            "sharing": {"kind": "hard"},
            "tasks": [
                {"spec": task.spec.model_dump(mode="json"), "state": task.state}
                for task in self.tasks.values()
            ],
        }

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> MultiTaskModel:
        """Restore a model written by `save_pretrained`, exactly."""
        directory = Path(directory)
        if (directory / "model" / MTLM_CONFIG).is_file():
            directory = directory / "model"
        config_file = directory / MTLM_CONFIG
        if not config_file.is_file():
            raise ConfigError(f"{directory}: not an mtlm model (no {MTLM_CONFIG})")
        described = json.loads(config_file.read_text())
        tasks: dict[str, TaskKind] = {}
        for entry in described["tasks"]:
            spec = TaskSpec.model_validate(entry["spec"])
            tasks[spec.name] = KINDS[spec.kind](spec, entry["state"])
        backbone = AutoModel.from_pretrained(directory, dtype=torch.float32)
        model = cls(backbone, tasks, load_tokenizer(str(directory)))
        model.heads.load_state_dict(load_file(directory / HEADS_FILE), strict=True)
        model.eval()
        return model


def load_tokenizer(location: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a model; a ConfigError names the location if there is none."""
    try:
        return AutoTokenizer.from_pretrained(location, revision=revision)
    except (OSError, ValueError) as error:
        raise ConfigError(f"model.name_or_path: no tokenizer at {location!r} ({error})") from None
