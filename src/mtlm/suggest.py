"""The "did you mean" of error messages: the nearest valid name, else the valid names."""

from __future__ import annotations

import difflib
from typing import Any


def suggestion(word: Any, choices: Any) -> str:
    """` (did you mean 'x'?)` for the choice nearest `word`, else ` (valid: a, b, c)`."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (valid: {', '.join(sorted(map(str, choices)))})"
