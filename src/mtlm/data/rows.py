"""The rows of one split as read from a file or a hub dataset: what tasks check and fit on.

It imports nothing of mtlm, so that task kinds can name it while the config imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SplitRows:
    """The rows of one split, where they came from, and a fingerprint of their content."""

    rows: list[dict[str, Any]]
    source: str
    locators: list[str]
    fingerprint: str

    def where(self, index: int) -> str:
        """`file, line N` for the row at `index`, for error messages."""
        return f"{self.source}, {self.locators[index]}"

    def select(self, indices: list[int], fingerprint: str) -> SplitRows:
        """A subset of the rows, keeping their original locators."""
        return SplitRows(
            rows=[self.rows[i] for i in indices],
            source=self.source,
            locators=[self.locators[i] for i in indices],
            fingerprint=fingerprint,
        )
