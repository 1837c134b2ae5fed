"""Where mtlm keeps what it can rebuild: tokenized features, baselines, downloaded archives."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """Return the cache root: `$MTLM_CACHE` if set, else `~/.cache/mtlm`."""
    env = os.environ.get("MTLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mtlm"
