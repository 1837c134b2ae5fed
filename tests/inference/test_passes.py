"""The one sharing rule: in a batch, tasks whose batches feed one encoder the same tokens read
one pass of it; a task's predictions never depend on the tasks predicted with it."""

from __future__ import annotations

from conftest import four_task_model

LONG = ["a very dull plot and it is boring", "the film was very very good and lovely"]


def counted_model(make_config, tiny_model_dir):
    """The hard-sharing four-task model, and the list its backbone appends to at each pass."""
    model = four_task_model(make_config(), tiny_model_dir, {"kind": "hard"})
    calls: list[int] = []
    model.sharing.backbone.register_forward_hook(lambda *args: calls.append(1))
    return model, calls


def rows(texts: list[str]) -> list[dict]:
    return [{"text": text, "tokens": text.split()} for text in texts]


def test_tasks_that_tokenize_apart_share_a_pass_where_the_tokens_agree(make_config, tiny_model_dir):
    model, calls = counted_model(make_config, tiny_model_dir)
    texts = ["lovely", "good film", *LONG]
    both = model.predict(["sentiment", "tagging"], rows(texts), batch_size=2)
    assert len(calls) == 2  # the text and its words give the same tokens: one pass a batch
    model.tasks["sentiment"].spec.max_length = 6
    calls.clear()
    cut = model.predict(["sentiment", "tagging"], rows(texts), batch_size=2)
    assert len(calls) == 3  # the long texts' batch: 6 tokens for one task, all for the other
    assert cut["tagging"] == both["tagging"]
    assert cut["sentiment"][:2] == both["sentiment"][:2]
    assert cut["sentiment"][2:] != both["sentiment"][2:]


def test_a_tasks_predictions_do_not_depend_on_its_companions(make_config, tiny_model_dir):
    model, _ = counted_model(make_config, tiny_model_dir)
    model.tasks["sentiment"].spec.max_length = 6
    texts = [*LONG, "lovely", "it is awful", "good film", "the plot was dull and boring"]
    together = model.predict(["sentiment", "score", "tagging"], rows(texts), batch_size=2)
    for task in ("sentiment", "score", "tagging"):
        assert together[task] == model.predict(task, rows(texts), batch_size=2)
