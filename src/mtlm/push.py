"""`mtlm push`: a saved multi-task model, or one exported task, uploaded to the Hugging Face
Hub in one commit, with its model card rendered again for the repository's name."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id

from mtlm.errors import ConfigError
from mtlm.files import is_staging, read_json
from mtlm.modeling.model_card import CARD_FILE, exported_card, multitask_card
from mtlm.modeling.multitask_model import MTLM_CONFIG, MultiTaskModel
from mtlm.outputs import EXPORT_MARKER, holds_results


def push_to_hub(
    model: MultiTaskModel | str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload `model` (a MultiTaskModel, a saved model folder, a run folder holding one in
    `model/`, or a folder `mtlm export` wrote) to the Hub repository `repo_id`, creating it if
    needed; return the commit's URL. Network and permission failures are ConfigErrors naming
    `--repo`."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ConfigError(f"--repo: {repo_id!r} is not a Hub repository name ({error})") from None
    if isinstance(model, MultiTaskModel):
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch) / "model"
            model.save_pretrained(folder)
            return _upload(folder, repo_id, token, private, revision, commit_message)
    return _upload(Path(model), repo_id, token, private, revision, commit_message)


def _upload(
    given: Path,
    repo_id: str,
    token: str | None,
    private: bool,
    revision: str | None,
    commit_message: str | None,
) -> str:
    folder, card = _folder_and_card(given, repo_id)
    operations = [
        CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and path.name not in (CARD_FILE, EXPORT_MARKER)
        and not any(is_staging(Path(part)) for part in path.relative_to(folder).parts)
    ]
    operations.append(CommitOperationAdd(CARD_FILE, str(card).encode("utf-8")))
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or f"Upload {folder.name} with mtlm",
            revision=revision,
        )
    except HfHubHTTPError as error:
        reason = str(error).splitlines()[0]
        raise ConfigError(f"--repo {repo_id}: the Hub refused the upload ({reason})") from None
    except OSError as error:
        raise ConfigError(f"--repo {repo_id}: cannot reach the Hub ({error})") from None
    return commit.commit_url


def _folder_and_card(given: Path, repo_id: str) -> tuple[Path, ModelCard]:
    """The folder to upload and its card for `repo_id`; a ConfigError naming `--model` if the
    folder is no model that mtlm wrote."""
    folder = given / "model" if (given / "model" / MTLM_CONFIG).is_file() else given
    if (folder / MTLM_CONFIG).is_file():
        described = _read_json(folder / MTLM_CONFIG)
        results_file = folder.parent / "eval_results.json"
        results = _read_json(results_file) if holds_results(results_file) else None
        return folder, multitask_card(described, repo_id, results)
    if (folder / EXPORT_MARKER).is_file():
        marker = _read_json(folder / EXPORT_MARKER)
        if isinstance(marker, dict) and isinstance(marker.get("card"), dict):
            return folder, exported_card(**marker["card"], model_id=repo_id)
        raise ConfigError(
            f"--model: {folder} was exported by an mtlm without model cards; export it again"
        )
    raise ConfigError(
        f"--model: {given} is not a saved mtlm model, a run folder or an export "
        f"(no {MTLM_CONFIG} or {EXPORT_MARKER})"
    )


def _read_json(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"--model: {path} cannot be read ({error})") from None
