"""Tests for mtlm.demo.models: the bundled models, what they need, and loading them offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import no_pip

from mtlm.demo import archives
from mtlm.demo.models import bundled_model_path, check_model
from mtlm.errors import ConfigError


@pytest.fixture
def without_gguf(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gguf package as if it were not installed (find_spec answers None for it)."""
    monkeypatch.setitem(sys.modules, "gguf", None)
    monkeypatch.setattr(archives, "_pip_download", no_pip)


def test_unknown_model_raises_config_error_naming_the_known_ones(tmp_cache: Path) -> None:
    with pytest.raises(ConfigError) as info:
        bundled_model_path("bert")
    assert str(info.value) == (
        "model.name_or_path: no bundled model 'bundled:bert'; "
        "known models: bundled:minilm, bundled:smollm2"
    )
    assert not tmp_cache.exists()


def test_a_model_that_needs_gguf_asks_for_it_by_name_before_any_download(
    tmp_cache: Path, without_gguf: None
) -> None:
    with pytest.raises(ConfigError) as info:
        bundled_model_path("smollm2")
    assert str(info.value) == (
        "model.name_or_path: bundled:smollm2 needs the gguf package; "
        "install it with pip install 'mtlm[demo]'"
    )
    assert not tmp_cache.exists()
    # The encoder needs nothing beyond mtlm's own dependencies.
    assert check_model("minilm").needs == ()


def test_a_converted_model_loads_without_gguf(tmp_cache: Path, without_gguf: None) -> None:
    import transformers

    # Converted by this major release of transformers: another's files may not load here.
    major = transformers.__version__.split(".")[0]
    folder = tmp_cache / "models" / f"smollm2-transformers-{major}"
    folder.mkdir(parents=True)
    assert bundled_model_path("smollm2") == folder
    # One built by another release is not taken for it.
    (tmp_cache / "models" / "smollm2").mkdir()
    assert bundled_model_path("smollm2") == folder


@pytest.mark.integration
def test_bundled_minilm_loads_offline() -> None:
    path = str(bundled_model_path("minilm"))
    script = (
        "import sys\n"
        "from transformers import AutoModel, AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "model = AutoModel.from_pretrained(sys.argv[1])\n"
        "batch = tok(['Hello World, a test.'], return_tensors='pt')\n"
        "out = model(**batch).last_hidden_state\n"
        "n = sum(p.numel() for p in model.parameters())\n"
        "print(model.config.model_type, model.config.num_hidden_layers, n, tuple(out.shape),\n"
        "      tok.decode(batch['input_ids'][0]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script, path], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last == "bert 6 22713216 (1, 8, 384) [CLS] hello world, a test. [SEP]"
