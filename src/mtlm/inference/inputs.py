"""Plain inputs to tokenized features, each task reading them as it read its training rows.

A task tokenizes with its own `encode_inputs`: its configured `max_length`, and the truncation
it was trained with. Tasks given the same inputs that tokenize them alike do so once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtlm.errors import DataError
from mtlm.inference.predictor import Predictor
from mtlm.tasks import TaskKind


@dataclass
class Encoded:
    """Tasks that read the same tokenized features, and those features (one list per field)."""

    tasks: list[str]
    features: dict[str, list[Any]]


@dataclass
class EncodedRows(Encoded):
    """Features tokenized from rows, and the rows (a kind that reads a long row in several
    windows joins their predictions from them)."""

    rows: list[dict[str, Any]]


def input_signature(task: TaskKind) -> tuple[Any, ...]:
    """Tasks with equal signatures (the same tokenizing method, columns and length) tokenize an
    input identically, so tokenize it once; a task that generates answers stands alone."""
    if task.generates:
        return ("generates", task.spec.name)
    return (type(task).encode_inputs, tuple(task.input_columns), task.spec.max_length)


def as_rows(task: TaskKind, inputs: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows from plain inputs: a text, a (text, pair) tuple, a list of words, or a row dict; a
    tuple holds one value per input column (a task reading several text columns, such as
    SuperGLUE's WiC, takes that many), and a DataError names an input that does not."""
    columns = task.input_columns
    rows = []
    for index, item in enumerate(inputs):
        if isinstance(item, dict):
            rows.append(item)
        elif isinstance(item, str) or (isinstance(item, list) and len(columns) == 1):
            rows.append({columns[0]: item})
        elif len(item) == len(columns):
            rows.append(dict(zip(columns, item, strict=True)))
        else:
            raise DataError(
                f"input {index + 1}: task {task.spec.name!r} reads {len(columns)} values "
                f"({', '.join(columns)}), and the input has {len(item)}; give a tuple of "
                f"{len(columns)} or a dict of those columns"
            )
    return rows


def encode(model: Predictor, inputs: Mapping[str, Sequence[Any]]) -> list[EncodedRows]:
    """Each named task's inputs as checked rows and features; tasks given equal inputs with
    equal signatures are tokenized together."""
    groups: list[tuple[tuple[Any, ...], Sequence[Any], list[str]]] = []
    for name, given in inputs.items():
        signature = input_signature(model.tasks[name])
        for known, known_inputs, names in groups:
            if known == signature and (known_inputs is given or known_inputs == given):
                names.append(name)
                break
        else:
            groups.append((signature, given, [name]))
    encoded = []
    for _, given, names in groups:
        lead = model.tasks[names[0]]
        rows = as_rows(lead, given)
        lead.check_inputs(rows, lambda index: f"input {index + 1}")
        encoded.append(EncodedRows(names, lead.encode_inputs(rows, model.tokenizer), rows))
    return encoded
