"""Scores of generated text against reference text, for text-to-text tasks.

Label-like targets (a class name, a number) are scored by exact match after light
normalisation; free text by BLEU and chrF (sacrebleu: Post 2018, "A Call for Clarity in
Reporting BLEU Scores"; Papineni et al. 2002; Popović 2015) and ROUGE-L (Lin 2004). Targets
that are all numbers also get Pearson correlation and mean squared error of the parsed values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation: "Positive." equals "positive"."""
    return " ".join(text.lower().split()).strip(" .,;:!?\"'")


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after `normalise`."""
    if not references:
        return math.nan
    hits = sum(normalise(p) == normalise(r) for p, r in zip(predictions, references, strict=True))
    return hits / len(references)


def text_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF and mean ROUGE-L F1, all as fractions from 0 to 1 like every
    other mtlm metric (sacrebleu reports BLEU and chrF from 0 to 100)."""
    import numpy as np
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge = [
        scorer.score(reference, prediction)["rougeL"].fmeasure
        for prediction, reference in zip(predictions, references, strict=True)
    ]
    return {
        "bleu": sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100,
        "chrf": sacrebleu.corpus_chrf(list(predictions), [list(references)]).score / 100,
        "rougeL": float(np.mean(rouge)) if rouge else math.nan,
    }


def word_accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of reference words matched by the predicted word at the same position (tagging
    written as text: one tag per word); missing and extra words count as wrong."""
    total = hits = 0
    for prediction, reference in zip(predictions, references, strict=True):
        gold, predicted = reference.split(), prediction.split()
        total += max(len(gold), len(predicted))
        hits += sum(g == p for g, p in zip(gold, predicted, strict=False))
    return hits / total if total else math.nan


_NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")


def parse_number(text: str) -> float | None:
    """The first number written in `text`, or None."""
    found = _NUMBER.search(text)
    return float(found.group()) if found else None


def numeric_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Pearson r and MSE of the numbers in predictions against numeric references; a prediction
    without a number counts as the references' mean, and `numeric_parsed` says how often
    that happened. Empty when some reference is not a number."""
    import numpy as np
    from scipy.stats import pearsonr

    gold = [parse_number(reference) for reference in references]
    if not gold or any(value is None for value in gold):
        return {}
    mean = float(np.mean(gold))
    parsed = [parse_number(prediction) for prediction in predictions]
    guessed = np.array([mean if value is None else value for value in parsed])
    gold_array = np.array(gold)
    constant = np.ptp(guessed) == 0 or np.ptp(gold_array) == 0
    return {
        "pearson": 0.0 if constant else float(pearsonr(guessed, gold_array)[0]),
        "mse": float(np.mean((guessed - gold_array) ** 2)),
        "numeric_parsed": sum(value is not None for value in parsed) / len(parsed),
    }
