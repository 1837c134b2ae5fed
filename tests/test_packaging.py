"""The package as a user installs it: every imported package declared in pyproject.toml, and
the built wheel (not the source tree) installed into a fresh virtualenv runs the command, finds
its packaged demo configs and trains from one."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from conftest import sentiment_rows, tagging_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level_modules() -> tuple[set[str], set[str]]:
    """The top-level modules the package's source imports, other than its own and stdlib's:
    those it always needs, and the optional ones (imported only inside a `try` that catches
    ImportError, to name the extra that brings them)."""
    always, optional = set(), set()
    for path in (ROOT / "src" / "mtlm").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = {
            id(node)
            for attempt in ast.walk(tree)
            if isinstance(attempt, ast.Try)
            and any(
                handler.type is not None and "ImportError" in ast.unparse(handler.type)
                for handler in attempt.handlers
            )
            for statement in attempt.body
            for node in ast.walk(statement)
        }
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            (optional if id(node) in guarded else always).update(names)
    own = {"mtlm", *sys.stdlib_module_names}
    return always - own, optional - own - always


def _declared(requirements: list[str]) -> set[str]:
    return {_canonical(re.match(r"[A-Za-z0-9._-]+", line).group()) for line in requirements}


def test_every_imported_package_is_a_declared_dependency() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = _declared(project["dependencies"])
    extras = _declared(
        [line for lines in project["optional-dependencies"].values() for line in lines]
    )
    distributions = packages_distributions()
    always, optional = _imported_top_level_modules()
    assert {"torch", "numpy", "pyarrow", "yaml"} <= always  # the scan sees imports at all
    assert "lightning" in optional  # and tells a guarded import apart
    undeclared = {
        module: distributions.get(module)
        for module in always
        if not {_canonical(name) for name in distributions.get(module, [])} & declared
    }
    assert undeclared == {}
    not_in_an_extra = {
        module: distributions.get(module)
        for module in optional
        if not {_canonical(name) for name in distributions.get(module, [])} & extras
    }
    assert not_in_an_extra == {}
    # The bundled decoder's GGUF reader (and the tokenizer reader transformers 4.x uses for it)
    # are the demo's needs, not the core's.
    assert "gguf" not in declared and "sentencepiece" not in declared
    assert project["optional-dependencies"]["demo"] == ["gguf>=0.10", "sentencepiece>=0.2"]


def _run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    return done


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding mtlm from its built wheel, installed without dependencies;
    the dependencies are this environment's, seen through a .pth file."""
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy, so the build leaves nothing (build/, *.egg-info) in the checkout.
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    pip = [sys.executable, "-m", "pip"]
    # No isolation: setuptools comes from this environment rather than from the network.
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root, source])
    (wheel,) = root.glob("mtlm-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    ours = sysconfig.get_paths()
    lines = dict.fromkeys([ours["purelib"], ours["platlib"]])
    (Path(purelib.stdout.strip()) / "mtlm-test-dependencies.pth").write_text("\n".join(lines))
    return venv


def _clean_env(cache: Path) -> dict[str, str]:
    # PYTHONPATH would put the checkout's src/ ahead of the installed package.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, "MTLM_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


PACKAGED_DEMO = """
import json, mtlm
from importlib.resources import files
from mtlm.demo.packaged import load_demo_config
config = load_demo_config("demo")
print(json.dumps({
    "mtlm": mtlm.__file__,
    "model": config.model.name_or_path,
    "tasks": [task.name for task in config.tasks],
    "text": (files("mtlm.demo") / "configs" / "demo.yaml").read_text(encoding="utf-8"),
}))
"""


@pytest.mark.slow
def test_the_installed_wheel_runs_and_trains_from_its_packaged_demo_config(
    installed_wheel: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    venv = installed_wheel
    env = _clean_env(tmp_path / "cache")
    mtlm = venv / "bin" / "mtlm"
    assert "demo" in _run([mtlm, "--help"], env=env, cwd=tmp_path).stdout
    demo_help = _run([mtlm, "demo", "--help"], env=env, cwd=tmp_path).stdout
    assert "(demo, demo_text_to_text)" in " ".join(demo_help.split())

    found = json.loads(
        _run([venv / "bin" / "python", "-c", PACKAGED_DEMO], env=env, cwd=tmp_path).stdout
    )
    assert Path(found["mtlm"]).resolve().is_relative_to(venv.resolve())
    assert found["model"] == "bundled:minilm"
    assert found["tasks"] == ["sentiment", "topic", "tweet_intensity", "pos"]

    # The packaged demo, on the tiny model and tiny files with the demo's columns.
    raw = yaml.safe_load(found["text"])
    sentiment = sentiment_rows(24)
    rows = {
        "sentiment": sentiment,
        "topic": sentiment_rows(24, seed=1),
        "tweet_intensity": [{"text": row["text"], "label": row["score"]} for row in sentiment],
        "pos": tagging_rows(24),
    }
    raw["model"]["name_or_path"] = str(tiny_model_dir)
    for task in raw["tasks"]:
        path = str(write_jsonl(tmp_path / f"{task['name']}.jsonl", rows[task["name"]]))
        task["data"] = {"train": path, "validation": path, "test": path}
        task["max_length"] = 32  # the tiny model has 64 positions
    raw["training"].update(
        output_dir=str(tmp_path / "run"), max_steps=2, batch_size=4, progress_bar=False
    )
    for key in ("eval_steps", "save_steps"):
        raw["training"].pop(key)
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    _run([mtlm, "train", config], env=env, cwd=tmp_path)
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert set(results["tasks"]) == set(rows)
