"""MultiTaskModel: backbone(s) shared among the tasks (hard, soft or LoRA) and a head per task.

Saved as plain files that outlive library upgrades: the backbone in Hugging Face format, the
heads as safetensors, the tasks as JSON. No pickle in a saved model (a checkpoint's optimizer
state is one: see `mtlm.training.checkpoint`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mtlm.config import SharingSpec, saved_sharing_spec, saved_task_spec
from mtlm.devices import DeviceLike, DeviceMap, input_device, placement, resolve_device
from mtlm.errors import ConfigError
from mtlm.files import staged_directory
from mtlm.inference import predict_inputs
from mtlm.modeling.backbones import check_task_kinds, load_backbone, model_family
from mtlm.modeling.dropout import use_cheap_masks
from mtlm.modeling.model_card import multitask_card, write_card
from mtlm.modeling.sharing import Sharing, build_sharing, load_sharing
from mtlm.modeling.sharing.hard import HardSharing, HardSharingSpec
from mtlm.tasks import KINDS, TaskKind

MTLM_CONFIG = "mtlm_config.json"


HEADS_FILE = "heads.safetensors"
#: 2: `cls` sequence heads gained a dense+tanh layer (the shape of Hugging Face's classifiers).
FORMAT_VERSION = 2


class TaskOutput(NamedTuple):
    """A task's head output and the backbone states it was computed from."""

    head: torch.Tensor
    hidden: torch.Tensor


class MultiTaskModel(nn.Module):
    """Backbone(s) shared by the tasks as the sharing strategy says (hard by default), and a
    ModuleDict of task heads."""

    def __init__(
        self,
        backbone: PreTrainedModel | Sharing,
        tasks: dict[str, TaskKind],
        tokenizer: PreTrainedTokenizerBase | None = None,
        base_model: str | None = None,
    ) -> None:
        super().__init__()
        #: The pretrained model the backbone started from, as the config named it (a Hub
        #: name, a folder or `bundled:<name>`), for the model card; None when unknown.
        self.base_model = base_model
        self.sharing = (
            backbone
            if isinstance(backbone, Sharing)
            else HardSharing(HardSharingSpec(kind="hard"), backbone)
        )
        self.add_module(self.sharing.module_name, self.sharing.module)
        self.tasks = dict(tasks)
        self.tokenizer = tokenizer
        self.family = model_family(self.sharing.base.config)
        self._bind_family()
        hidden_size = self.sharing.base.config.hidden_size
        # New heads take the backbone's dtype, as a transformers task class loaded in half
        # precision does, so that the states they read need no cast; and its device, where
        # those states come out.
        self.heads = nn.ModuleDict(
            {name: task.build_head(hidden_size) for name, task in tasks.items()}
        ).to(device=self.device, dtype=self.sharing.base.dtype)
        for head in self.heads.values():
            # Heads with a pretrained counterpart in the backbone (a pooler, the embeddings)
            # start from it, as Hugging Face's task classes do.
            start = getattr(head, "start_from_backbone", None)
            if start is not None:
                start(self.sharing.base)
        accepted = inspect.signature(self.sharing.base.forward).parameters
        self._backbone_inputs = [
            key for key in ("input_ids", "attention_mask", "token_type_ids") if key in accepted
        ]
        use_cheap_masks(self)

    @classmethod
    def from_backbone(
        cls,
        name_or_path: str,
        tasks: dict[str, TaskKind],
        revision: str | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        sharing: SharingSpec | None = None,
        dtype: str = "float32",
    ) -> MultiTaskModel:
        """New heads on a pretrained backbone (hub name, local folder or `bundled:<name>`),
        shared among the tasks as `sharing` says, with weights in `dtype` (`auto`: the
        checkpoint's)."""
        from mtlm.bundled import resolve_model_name

        location = resolve_model_name(name_or_path)
        tokenizer = tokenizer or load_tokenizer(location, revision)
        backbone = load_backbone(location, revision, dtype=dtype)
        return cls(
            build_sharing(sharing or HardSharingSpec(kind="hard"), backbone, list(tasks)),
            tasks,
            tokenizer,
            name_or_path,
        )

    @property
    def device(self) -> torch.device:
        """Where batches go: the backbone's device (for a backbone placed by a `device_map`,
        where its first layers run; its outputs come back there)."""
        return input_device(self.sharing.base)

    @property
    def pad_token_id(self) -> int:
        """The id batches are padded with: the tokenizer's pad token, else 0 (padding is masked
        out either way)."""
        pad = self.tokenizer.pad_token_id if self.tokenizer is not None else None
        return 0 if pad is None else pad

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[MultiTaskModel]:
        """Eval mode (no dropout) for the block, then the mode the model was in before."""
        was_training = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(was_training)

    def _bind_family(self) -> None:
        """Refuse kinds the model cannot serve; tell every task about the model it runs on."""
        config = self.sharing.base.config
        architecture = ", ".join(config.architectures or []) or config.model_type
        check_task_kinds(
            self.family,
            [task.spec for task in self.tasks.values()],
            architecture,
            {task.spec.kind: type(task) for task in self.tasks.values()},
        )
        vocabulary_size = self.sharing.base.get_input_embeddings().num_embeddings
        for task in self.tasks.values():
            task.bind_model(self.family, self.tokenizer, vocabulary_size)

    # --- forward --------------------------------------------------------------------------
    def encode(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        """The last hidden states of `task`'s encoder for a batch; of a causal model, those
        under its language model head (after the final norm, as transformers' task classes
        read them)."""
        inputs = {key: batch[key] for key in self._backbone_inputs if key in batch}
        if self.family != "causal":
            return self.sharing.encoder(task)(**inputs).last_hidden_state
        # The whole model, so that every sharing kind's wrapper (a peft model) runs as in
        # training a text-to-text task; its vocabulary projection for one position only.
        outputs = self.sharing.encoder(task)(
            **inputs, output_hidden_states=True, logits_to_keep=1, use_cache=False
        )
        return outputs.hidden_states[-1]

    def forward(
        self,
        task: str | Mapping[str, dict[str, torch.Tensor]],
        batch: dict | None = None,
        penalty_strength: float | None = None,
    ) -> Any:
        """The head output of one task on its batch; or, given `{task: batch}`, each task's
        head output and backbone states (one call, so that DDP sees one forward per step).

        With `penalty_strength`, returns `(outputs, penalty)` where penalty is the sharing's
        regulariser and a distance to log (or None): computing it inside forward keeps it in
        the graph that DDP tracks.
        """
        if isinstance(task, str):
            outputs = self.task_output(task, batch).head
        else:
            outputs = {
                name: self.task_output(name, task_batch) for name, task_batch in task.items()
            }
        if penalty_strength is None:
            return outputs
        return outputs, self.sharing.penalty(penalty_strength)

    def task_output(self, task: str, batch: dict[str, torch.Tensor]) -> TaskOutput:
        """A task's head output on its batch, and the last hidden states it came from; for a
        task on a decoder, the language model's logits."""
        if self.tasks[task].uses_language_model_head:
            return self._language_model_output(task, batch)
        hidden = self.encode(batch, task)
        return TaskOutput(self.heads[task](hidden, batch["attention_mask"]), hidden)

    def _language_model_output(self, task: str, batch: dict[str, torch.Tensor]) -> TaskOutput:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if self.family == "seq2seq":
            labels = batch["labels"]
            inputs["decoder_input_ids"] = self.sharing.base.prepare_decoder_input_ids_from_labels(
                labels=labels
            )
        else:
            # Positions before the shortest prompt's last token predict no target token, and
            # the vocabulary projection is a large share of a small decoder's compute.
            shortest_prompt = int(batch["prompt_length"].min())
            inputs["logits_to_keep"] = batch["input_ids"].shape[1] - shortest_prompt + 1
        outputs = self.sharing.encoder(task)(**inputs, output_hidden_states=True)
        states = (
            outputs.decoder_hidden_states if self.family == "seq2seq" else outputs.hidden_states
        )
        return TaskOutput(outputs.logits, states[-1])

    def shared_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters every task uses."""
        return self.sharing.shared_parameters()

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """Trainable parameters only `task` uses: its head and its own backbone parameters."""
        return [*self.heads[task].parameters(), *self.sharing.task_parameters(task)]

    def accounting(self) -> dict[str, Any]:
        """Parameter counts and memory of the model, overall and per task."""
        unique = {id(p): p for p in self.parameters()}
        buffers = {id(b): b for b in self.buffers()}
        per_task = {
            name: self.sharing.task_view(name)["backbone"]
            + sum(p.numel() for p in self.heads[name].parameters())
            for name in self.tasks
        }
        return {
            "sharing": self.sharing.spec.kind,
            "total_parameters": sum(p.numel() for p in unique.values()),
            "trainable_parameters": sum(p.numel() for p in unique.values() if p.requires_grad),
            "parameters_per_task": per_task,
            "memory_bytes": sum(
                t.numel() * t.element_size() for t in [*unique.values(), *buffers.values()]
            ),
        }

    def forward_heads(
        self, batch: dict[str, torch.Tensor], tasks: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Several heads on one backbone pass over the same inputs (the tasks must share an
        encoder: equal `sharing.pass_key`)."""
        hidden = self.encode(batch, tasks[0])
        return {task: self.heads[task](hidden, batch["attention_mask"]) for task in tasks}

    def predict(
        self, task: str | Sequence[str], inputs: Sequence[Any], batch_size: int = 32
    ) -> list[Any] | dict[str, list[Any]]:
        """Decoded predictions for texts, text pairs, word lists or rows.

        With one task name, a list with one prediction per input; with several, a dict of such
        lists, sharing one backbone pass among tasks that read the same tokens.
        """
        names = [task] if isinstance(task, str) else list(task)
        predicted = predict_inputs(self, dict.fromkeys(names, inputs), batch_size)
        return predicted[task] if isinstance(task, str) else predicted

    # --- saving ---------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Write the model to `directory` atomically: backbone, tokenizer, heads, task config
        and a model card (README.md)."""
        with staged_directory(Path(directory)) as staging:
            self.sharing.save(staging)
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(staging)
            heads = {
                key: value.detach().contiguous() for key, value in self.heads.state_dict().items()
            }
            save_file(heads, staging / HEADS_FILE)
            described = self.describe()
            (staging / MTLM_CONFIG).write_text(json.dumps(described, indent=2))
            write_card(staging, multitask_card(described, str(directory)))

    def describe(self) -> dict[str, Any]:
        """What `from_pretrained` needs besides the weights: tasks, their kinds and state."""
        return {
            "format_version": FORMAT_VERSION,
            "base_model": self.base_model,
            "sharing": self.sharing.spec.model_dump(mode="json"),
            "tasks": [
                {"spec": task.spec.model_dump(mode="json"), "state": task.state}
                for task in self.tasks.values()
            ],
        }

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: DeviceLike = None,
        device_map: DeviceMap = None,
        offload_folder: str | Path | None = None,
    ) -> MultiTaskModel:
        """Restore a model written by `save_pretrained`, exactly, on `device` (see
        `mtlm.devices`: by default the accelerator if there is one, else the CPU); or with
        `device_map` ("auto", or a map of module names to devices, as transformers'
        `from_pretrained` takes it), the backbone's layers spread over devices for a model
        larger than one, and the heads where its outputs come out; layers the map sends to
        "disk" are kept in `offload_folder`. A damaged or incomplete folder is a ConfigError
        naming the file."""
        if device is not None and device_map is not None:
            raise ConfigError(
                "device_map: give a device or a device_map, not both (the map places the "
                "backbone's layers itself)"
            )
        spread = placement(device_map, offload_folder)
        target = None if spread is not None else resolve_device(device, "device")
        directory = Path(directory)
        if (directory / "model" / MTLM_CONFIG).is_file():
            directory = directory / "model"
        config_file = directory / MTLM_CONFIG
        if not config_file.is_file():
            raise ConfigError(f"{directory}: not an mtlm model (no {MTLM_CONFIG})")
        check_model_files(directory)
        described = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(described, dict):
            raise damaged(config_file, "not a JSON object")
        version = described.get("format_version", 1)
        if version < FORMAT_VERSION:
            raise ConfigError(
                f"{config_file}: saved in mtlm model format {version}, whose sequence heads "
                f"have another shape than format {FORMAT_VERSION}'s; retrain the model with this "
                "version of mtlm to re-save it"
            )
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"{config_file}: saved in mtlm model format {version}, newer than this "
                f"version reads ({FORMAT_VERSION}); upgrade mtlm"
            )
        entries = described.get("tasks")
        if not (
            isinstance(entries, list)
            and entries
            and all(
                isinstance(entry, dict)
                and isinstance(entry.get("spec"), dict)
                and isinstance(entry.get("state"), dict)
                for entry in entries
            )
        ):
            raise damaged(config_file, "no list of tasks, each with its spec and state")
        tasks: dict[str, TaskKind] = {}
        for index, entry in enumerate(entries):
            spec = saved_task_spec(entry["spec"], f"{config_file} is damaged: tasks[{index}].spec")
            try:
                tasks[spec.name] = KINDS[spec.kind](spec, entry["state"])
            except KeyError as error:
                raise damaged(
                    config_file, f"tasks[{index}].state has no {error.args[0]!r}"
                ) from None
            except (TypeError, ValueError) as error:
                raise damaged(config_file, f"tasks[{index}].state: {error}") from None
        base_model = described.get("base_model")
        if not isinstance(base_model, str | None):
            raise damaged(config_file, "base_model is not a name")
        sharing = described.get("sharing", {})
        if not isinstance(sharing, dict):
            raise damaged(config_file, "sharing is not a mapping")
        spec = saved_sharing_spec(sharing, f"{config_file} is damaged: sharing")
        sharing = load_sharing(spec, directory, list(tasks), spread)
        try:
            # A task reads its saved state (label names, target statistics) when its head is
            # built: a key missing there is the file's fault.
            model = cls(sharing, tasks, load_tokenizer(str(directory)), base_model)
        except KeyError as error:
            raise damaged(config_file, f"a task's state has no {error.args[0]!r}") from None
        model.heads.load_state_dict(read_heads(directory / HEADS_FILE, model.heads))
        if target is not None:
            model.to(target)
        model.eval()
        return model


def damaged(file: Path, reason: object) -> ConfigError:
    """The error for a model file that cannot be read as what mtlm wrote there."""
    return ConfigError(f"{file} is damaged ({reason})")


def check_model_files(directory: Path) -> None:
    """Read every JSON file and every safetensors header under a model folder, so that a
    truncated or edited file is named, rather than failing deep inside a loader."""
    for file in sorted(directory.rglob("*")):
        try:
            if file.suffix == ".json":
                json.loads(file.read_text(encoding="utf-8"))
            elif file.suffix == ".safetensors":
                with safe_open(file, "pt"):
                    pass
        except (ValueError, SafetensorError) as error:  # JSON and UTF-8 errors are ValueErrors
            raise damaged(file, error) from None


def read_heads(file: Path, heads: nn.ModuleDict) -> dict[str, torch.Tensor]:
    """The heads' weights in `file`, checked to be the tensors `heads` holds, name by name and
    shape by shape."""
    if not file.is_file():
        raise ConfigError(f"{file}: not found; the model folder is incomplete")
    weights = load_file(file)
    expected = heads.state_dict()
    for name, tensor in expected.items():
        if name not in weights:
            raise damaged(file, f"no tensor {name!r}, which {MTLM_CONFIG}'s tasks need")
        if weights[name].shape != tensor.shape:
            raise damaged(
                file,
                f"{name!r} has shape {list(weights[name].shape)}, and {MTLM_CONFIG}'s tasks "
                f"need {list(tensor.shape)}",
            )
    unexpected = sorted(set(weights) - set(expected))
    if unexpected:
        raise damaged(file, f"tensor {unexpected[0]!r} belongs to no head of {MTLM_CONFIG}")
    return weights


#: The files a saved tokenizer has at least one of: its config, a fast tokenizer, a WordPiece,
#: BPE or SentencePiece vocabulary.
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.txt", "vocab.json", "*.model")


def load_tokenizer(location: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a model; a ConfigError names the location if there is none.

    A local folder without any tokenizer file is refused before transformers sees it: release 5
    then builds a tokenizer of five special tokens, which reads every word as unknown, and 4.x
    fails with a TypeError."""
    folder = Path(location)
    if folder.is_dir() and not any(any(folder.glob(name)) for name in TOKENIZER_FILES):
        raise ConfigError(
            f"model.name_or_path: no tokenizer at {location!r} (none of "
            f"{', '.join(TOKENIZER_FILES)} in the folder)"
        )
    try:
        return AutoTokenizer.from_pretrained(location, revision=revision)
    except (OSError, ValueError) as error:
        raise ConfigError(f"model.name_or_path: no tokenizer at {location!r} ({error})") from None
