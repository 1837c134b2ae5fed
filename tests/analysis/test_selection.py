"""The plan's selection rule: validation only, per task, single-task unless beaten."""

from __future__ import annotations

from mtlm.analysis.selection import SINGLE_TASK, Candidate, choose_per_task, chosen_scores

DIRECTIONS = {"sentiment": True, "score": True, "error": False}


def candidates():
    return [
        Candidate(
            SINGLE_TASK,
            {"sentiment": 0.80, "score": 0.70, "error": 0.50},
            {"sentiment": 0.10, "score": 0.10, "error": 9.0},
        ),
        # better on test everywhere, worse on validation for sentiment: must not be chosen there
        Candidate(
            "all-in-one",
            {"sentiment": 0.79, "score": 0.75, "error": 0.50},
            {"sentiment": 0.99, "score": 0.99, "error": 0.0},
        ),
        Candidate(
            "fine-tuned",
            {"sentiment": 0.78, "score": 0.72, "error": 0.40},
            {"sentiment": 0.50, "score": 0.50, "error": 5.0},
        ),
    ]


def test_each_task_gets_its_best_validation_candidate():
    choices = choose_per_task(candidates(), DIRECTIONS)
    assert {task: c.candidate for task, c in choices.items()} == {
        "sentiment": SINGLE_TASK,
        "score": "all-in-one",
        "error": "fine-tuned",  # lower is better
    }


def test_test_scores_never_decide_and_ties_keep_the_single_task_model():
    tied = candidates()
    tied[1].validation["error"] = 0.50
    tied[2].validation["error"] = 0.50
    choices = choose_per_task(tied, DIRECTIONS)
    assert choices["error"].candidate == SINGLE_TASK
    assert choices["sentiment"].candidate == SINGLE_TASK
    assert "no other candidate beat" in choices["sentiment"].reason


def test_chosen_scores_report_the_chosen_candidates_test_score():
    choices = choose_per_task(candidates(), DIRECTIONS)
    scores = chosen_scores(choices, candidates())
    assert scores["score"] == {"candidate": "all-in-one", "validation": 0.75, "test": 0.99}
    assert scores["sentiment"]["test"] == 0.10
    assert scores["error"]["test"] == 5.0


def test_a_task_without_a_single_task_model_takes_the_best_there_is():
    only = [c for c in candidates() if c.name != SINGLE_TASK]
    choices = choose_per_task(only, DIRECTIONS)
    assert choices["sentiment"].candidate == "all-in-one"
    assert "no single-task model" in choices["sentiment"].reason
