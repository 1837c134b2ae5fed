"""Model cards of saved and exported models, and `mtlm push` with the Hub client faked."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.errors import HfHubHTTPError

from mtlm import Trainer
from mtlm.bundled import hub_origin
from mtlm.cli import main
from mtlm.export import export_task


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A run of the three-task fixture config, trained for a few steps."""
    from conftest import three_task_config, write_task_files

    root = tmp_path_factory.mktemp("card")
    config = three_task_config(
        tiny_model_dir, write_task_files(root), root, max_steps=4, eval_steps=None
    )
    Trainer(config).train()
    return root / "run"


def test_a_trained_model_has_a_card_with_its_tasks_and_test_scores(run: Path) -> None:
    card = ModelCard.load(run / "model" / "README.md")
    results = json.loads((run / "eval_results.json").read_text())
    assert card.data.library_name == "mtlm"
    assert {"mtlm", "text-classification", "token-classification"} <= set(card.data.tags)
    reported = {result.task_name: result for result in card.data.eval_results}
    assert set(reported) == {"sentiment", "score", "tagging"}
    for task, scores in results["tasks"].items():
        assert reported[task].metric_type == scores["primary"]
        assert reported[task].metric_value == scores[scores["primary"]]
        assert reported[task].dataset_split == "test"
    assert f'MultiTaskModel.from_pretrained("{run / "model"}")' in card.text
    # a local model folder is no Hub repository to name as the base model
    assert card.data.base_model is None


def test_an_exported_task_has_a_card_that_names_its_pipeline(run: Path, tmp_path: Path) -> None:
    folder = export_task(run / "model", "tagging", tmp_path / "tagging")
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == "token-classification"
    assert card.data.library_name == "transformers"
    assert f'pipeline("token-classification", model="{folder}")' in card.text


@pytest.mark.parametrize(
    ("name", "origin"),
    [
        ("bundled:minilm", "sentence-transformers/all-MiniLM-L6-v2"),
        ("bundled:smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ("bundled:absent", None),
        ("google-bert/bert-base-uncased", "google-bert/bert-base-uncased"),
        ("bert-base-uncased", "bert-base-uncased"),
        ("/models/my bert", None),
    ],
)
def test_the_base_model_on_a_card_is_a_hub_name_or_nothing(name: str, origin: str | None) -> None:
    assert hub_origin(name) == origin


class FakeHub:
    """HfApi's two calls that push makes, recorded instead of sent."""

    calls: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, token: str | None = None) -> None:
        self.calls.append(("init", {"token": token}))

    def create_repo(self, repo_id: str, **options: Any) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **options}))

    def create_commit(self, repo_id: str, operations: list, **options: Any) -> SimpleNamespace:
        self.calls.append(("create_commit", {"repo_id": repo_id, "operations": operations}))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/abc")


def test_push_uploads_the_model_folder_in_one_commit_with_a_card_for_the_repo(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    FakeHub.calls = []
    monkeypatch.setattr("mtlm.push.HfApi", FakeHub)
    assert main(["push", "--model", str(run), "--repo", "someone/tagger", "--private"]) == 0
    assert capsys.readouterr().out.strip() == "https://huggingface.co/someone/tagger/commit/abc"
    (_, init), (_, repo), (_, commit) = FakeHub.calls
    assert init == {"token": None}
    assert repo["repo_id"] == "someone/tagger" and repo["private"] is True
    uploaded = {op.path_in_repo: op for op in commit["operations"]}
    on_disk = {
        path.relative_to(run / "model").as_posix()
        for path in (run / "model").rglob("*")
        if path.is_file()
    }
    assert set(uploaded) == on_disk
    card = ModelCard(uploaded["README.md"].path_or_fileobj.decode())
    assert 'MultiTaskModel.from_pretrained("someone/tagger")' in card.text
    assert card.data.model_name == "someone/tagger"
    # the folder itself is left as it was
    assert "someone/tagger" not in (run / "model" / "README.md").read_text()


def test_a_refused_upload_is_one_line_naming_the_repo(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    class Refusing(FakeHub):
        def create_repo(self, repo_id: str, **options: Any) -> None:
            response = SimpleNamespace(headers={}, request=None)
            raise HfHubHTTPError("401 Client Error: Unauthorized\nmore detail", response=response)

    monkeypatch.setattr("mtlm.push.HfApi", Refusing)
    assert main(["push", "--model", str(run), "--repo", "someone/tagger"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("mtlm: error: --repo someone/tagger: the Hub refused the upload")
    assert "401" in error
