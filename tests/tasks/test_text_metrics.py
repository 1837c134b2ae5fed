import math

import pytest

from mtlm.tasks.text_metrics import (
    exact_match,
    normalise,
    numeric_scores,
    parse_number,
    text_scores,
    word_accuracy,
)


def test_exact_match_ignores_case_spacing_and_end_punctuation():
    assert normalise("  Positive. ") == "positive"
    assert exact_match(["Positive.", "neg", "sport"], ["positive", "pos", "Sport"]) == 2 / 3
    assert math.isnan(exact_match([], []))


def test_identical_texts_score_perfectly_and_unrelated_ones_do_not():
    references = ["the cat sat on the mat today", "a dog ran in the park at noon"]
    perfect = text_scores(references, references)
    assert perfect["bleu"] == pytest.approx(1.0)
    assert perfect["chrf"] == pytest.approx(1.0)
    assert perfect["rougeL"] == pytest.approx(1.0)
    unrelated = text_scores(["zebra xylophone", "quartz jukebox"], references)
    assert unrelated["bleu"] < 0.01
    assert unrelated["rougeL"] == 0.0
    assert unrelated["chrf"] < perfect["chrf"] / 4


def test_rouge_l_is_the_longest_common_subsequence_f1():
    # LCS of "the cat on mat" in "the cat sat on the mat" is 4 words: P = 4/4, R = 4/6.
    scores = text_scores(["the cat on mat"], ["the cat sat on the mat"])
    precision, recall = 1.0, 4 / 6
    assert scores["rougeL"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_numbers_are_parsed_and_correlated_with_a_fallback_for_unparsed_ones():
    assert parse_number("about -1.5 points") == -1.5
    assert parse_number("none") is None
    scores = numeric_scores(["1.0", "2.0", "three"], ["1", "2", "3"])
    # "three" has no number and counts as the references' mean, 2.
    assert scores["mse"] == pytest.approx((0 + 0 + 1) / 3)
    assert scores["numeric_parsed"] == pytest.approx(2 / 3)
    assert numeric_scores(["1", "2", "4"], ["1", "2", "3"])["pearson"] > 0.9
    assert numeric_scores(["1", "2"], ["positive", "negative"]) == {}


def test_word_accuracy_compares_words_by_position_and_counts_extra_words_wrong():
    assert word_accuracy(["DT NN VB"], ["DT NN VB"]) == 1.0
    assert word_accuracy(["DT JJ VB"], ["DT NN VB"]) == pytest.approx(2 / 3)
    # one word short of four, and one word too many on a two-word reference
    assert word_accuracy(["DT NN VB", "NN VB IN"], ["DT NN VB CC", "NN VB"]) == pytest.approx(5 / 7)
