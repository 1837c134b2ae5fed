"""Answer-string scores of extractive question answering: SQuAD exact match and token F1.

The definitions follow the official evaluation scripts of SQuAD v1.1 (Rajpurkar et al., 2016,
"SQuAD: 100,000+ Questions for Machine Comprehension of Text") and v2.0 (Rajpurkar et al.,
2018, "Know What You Don't Know: Unanswerable Questions for SQuAD"): answers are compared
after normalisation, and a prediction scores its best match over the gold answers.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, squeeze whitespace (SQuAD v1.1)."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """F1 of the bags of normalised words; an empty answer scores 1 only against an empty one
    (the SQuAD v2.0 rule for unanswerable questions)."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_scores(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """Exact match and F1 of a prediction against its best gold answer; no gold answers means
    the question is unanswerable, so only the empty answer is right (SQuAD v2.0)."""
    golds = list(golds) or [""]
    return (
        max(exact_match(prediction, gold) for gold in golds),
        max(token_f1(prediction, gold) for gold in golds),
    )
