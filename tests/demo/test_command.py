"""Tests for mtlm.demo.command through the `mtlm demo` command: what it offers and how it
refuses a mistake (the full demo trains for minutes: `make demo`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import no_pip

from mtlm.cli import main
from mtlm.demo import archives


def test_demo_help_offers_the_packaged_configs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "a packaged demo config (demo, demo_text_to_text) or a YAML file" in text


def test_the_text_to_text_demo_without_gguf_says_what_to_install(
    tmp_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "gguf", None)
    monkeypatch.setattr(archives, "_pip_download", no_pip)
    output = tmp_path / "out"
    status = main(["demo", "--config", "demo_text_to_text", "--output-dir", str(output)])
    assert status == 2
    assert capsys.readouterr().err == (
        "mtlm: error: model.name_or_path: bundled:smollm2 needs the gguf package; "
        "install it with pip install 'mtlm[demo]'\n"
    )
    assert not output.exists() and not tmp_cache.exists()
