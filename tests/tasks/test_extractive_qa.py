"""Extractive QA: answer characters to tokens, windows over long contexts, SQuAD scores,
gathering windows back into one answer per row, validation naming the row, and training."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from conftest import FILLER, POSITIVE, assert_declared, tiny_tokenizer

from mtlm import ConfigError, DataError, MultiTaskModel, Trainer
from mtlm.config import config_from_dict, task_spec
from mtlm.data.rows import SplitRows
from mtlm.evaluation.evaluate import trivial_baseline
from mtlm.tasks.extractive_qa import ExtractiveQA, QAReference, WindowSpan
from mtlm.tasks.squad_metrics import best_scores, exact_match, normalize_answer, token_f1


def split_rows(rows: list[dict[str, Any]], source: str = "train.jsonl") -> SplitRows:
    return SplitRows(rows, source, [f"line {i + 1}" for i in range(len(rows))], "fingerprint")


def make_task(**fields: Any) -> ExtractiveQA:
    spec = task_spec(
        {"name": "qa", "kind": "extractive_qa", "data": {"train": "x"}, "stride": 4, **fields}
    )
    return ExtractiveQA(spec)


def qa_row(question: str, context: str, answer: str, occurrence: int = 0) -> dict[str, Any]:
    """A SQuAD row whose answer is the `occurrence`-th match of `answer` in the context."""
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(answer, start + 1)
    return {
        "question": question,
        "context": context,
        "answers": {"text": [answer], "answer_start": [start]},
    }


def span_text(features: dict[str, list[Any]], index: int) -> str:
    """The context characters between a window's gold start and end tokens."""
    offsets = features["offset_mapping"][index]
    start, end = features["start_positions"][index], features["end_positions"][index]
    return features["context"][index][offsets[start][0] : offsets[end][1]]


def test_an_answer_maps_to_its_first_and_last_token() -> None:
    task = make_task(max_length=32)
    tokenizer = tiny_tokenizer()
    row = qa_row("is it good", "the plot was dull and the movies were good", "movies were good")
    features = task.prepare(split_rows([row]), tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(features["input_ids"][0])
    assert tokens[:5] == ["[CLS]", "is", "it", "good", "[SEP]"]
    # "movies" is two tokens, "were" is unknown; the span runs from "movie" to "good"
    start, end = features["start_positions"][0], features["end_positions"][0]
    assert tokens[start : end + 1] == ["movie", "##s", "[UNK]", "good"]
    assert span_text(features, 0) == "movies were good"
    # only context tokens carry offsets: not [CLS], the question or the separators
    assert features["offset_mapping"][0][:5] == [None] * 5
    assert features["offset_mapping"][0][-1] is None
    assert features["offset_mapping"][0][5] == [0, 3]
    assert features["example"] == [0]
    assert task.references(features) == [QAReference(row["context"], ["movies were good"])]


def test_a_long_context_is_read_in_overlapping_windows() -> None:
    task = make_task(max_length=16, stride=4)
    tokenizer = tiny_tokenizer()
    words = [FILLER[i % len(FILLER)] for i in range(24)] + ["superb", "film"]
    long_row = qa_row("is it good", " ".join(words), "superb film")
    short_row = qa_row("is it", "a fine movie", "fine")
    features = task.prepare(split_rows([long_row, short_row]), tokenizer)
    examples = features["example"]
    assert examples[-1] == 1 and examples.count(0) >= 2
    windows = [index for index, example in enumerate(examples) if example == 0]
    assert all(len(features["input_ids"][index]) <= 16 for index in windows)
    # the first window does not reach the answer, so it is trained to point at [CLS]
    assert (features["start_positions"][0], features["end_positions"][0]) == (0, 0)
    last = windows[-1]
    assert features["start_positions"][last] > 0
    assert span_text(features, last) == "superb film"
    # consecutive windows share `stride` context tokens
    first_offsets = [o for o in features["offset_mapping"][0] if o is not None]
    second_offsets = [o for o in features["offset_mapping"][1] if o is not None]
    assert first_offsets[-4:] == second_offsets[:4]
    assert span_text(features, windows[-1] + 1) == "fine"
    assert [ref.answers for ref in task.references(features)] == [["superb film"], ["fine"]]


@pytest.mark.parametrize(
    ("prediction", "gold", "em", "f1"),
    [
        ("the Cat!", "cat", 1.0, 1.0),
        ("a  cat sat", "The cat", 0.0, 2 / 3),  # 1 common word: precision 1/2, recall 1
        ("dog", "cat", 0.0, 0.0),
        ("", "cat", 0.0, 0.0),
        ("", "", 1.0, 1.0),  # SQuAD v2.0: no answer matches no answer
    ],
)
def test_squad_scores_compare_normalised_answers(prediction, gold, em, f1) -> None:
    assert exact_match(prediction, gold) == em
    assert token_f1(prediction, gold) == pytest.approx(f1)


def test_squad_scores_take_the_best_gold_answer() -> None:
    assert normalize_answer("  An Apple, the  PIE. ") == "apple pie"
    assert best_scores("fine film", ["a movie", "the fine film", "film"]) == (1.0, 1.0)
    assert best_scores("fine movie", ["fine film", "movie"]) == (0.0, pytest.approx(2 / 3))
    assert best_scores("", []) == (1.0, 1.0)
    assert best_scores("film", []) == (0.0, 0.0)


def test_an_example_takes_the_best_span_of_its_windows() -> None:
    task = make_task()
    contexts = ["good film and bad plot", "a dull movie"]
    spans = [
        WindowSpan(0, 0, 4, 1.0, 0.5),
        WindowSpan(0, 18, 22, 3.0, 5.0),  # the best window of row 0: "plot"
        WindowSpan(0, 5, 9, 2.0, 0.0),
        WindowSpan(1, 2, 6, 0.5, 9.0),
    ]
    references = [QAReference(contexts[0], ["the plot"]), QAReference(contexts[1], ["movie"])]
    assert task.metrics(spans, references) == {"exact_match": 0.5, "f1": 0.5}
    rows = [{"question": "what", "context": context} for context in contexts]
    assert task.row_predictions(spans, rows) == ["plot", "dull"]
    # unanswerable allowed: the lowest "no answer" score of a row's windows competes (row 0:
    # 0.0 < 3.0 keeps "plot"; row 1: 9.0 > 0.5 gives no answer)
    lenient = make_task(allow_unanswerable=True)
    assert lenient.row_predictions(spans, rows) == ["plot", ""]
    references[1] = QAReference(contexts[1], [])
    scores = lenient.metrics(spans, references)
    assert scores["exact_match"] == 1.0
    assert scores["f1[has_answer]"] == 1.0 and scores["f1[no_answer]"] == 1.0
    assert_declared(lenient, scores)


def test_the_trivial_answer_is_the_context_opening() -> None:
    # training answers of 1, 2 and 2 words (the second row has two windows): k = 2 words
    train = {"example": [0, 1, 1, 2], "answers": [["fine"], ["a film"], ["a film"], ["dull plot"]]}
    references = [
        QAReference("a dull movie", ["dull movie"]),
        QAReference("good film", ["good film"]),
    ]
    task = make_task()
    trivial = task.trivial_predictions(train, references)
    rows = [{"context": reference.context} for reference in references]
    assert task.row_predictions(trivial, rows) == ["a dull", "good film"]
    # "a dull" against "dull movie": the article goes, 1 common word of 1 and 2: F1 2/3
    assert task.metrics(trivial, references) == {"exact_match": 0.5, "f1": pytest.approx(5 / 6)}
    # with most training questions unanswerable, the trivial answer is no answer
    lenient = make_task(allow_unanswerable=True)
    train["answers"] = [[], ["a film"], ["a film"], []]
    assert lenient.row_predictions(lenient.trivial_predictions(train, references), rows) == [
        "",
        "",
    ]


def test_spans_stay_in_the_context_in_order_and_short() -> None:
    task = make_task(max_length=32, max_answer_length=2)
    tokenizer = tiny_tokenizer()
    row = qa_row("is it", "the movie was very good and fine", "good")
    features = task.encode_inputs([row], tokenizer)
    batch = task.collate([{key: values[0] for key, values in features.items()}], 0)
    tokens = tokenizer.convert_ids_to_tokens(features["input_ids"][0])
    logits = torch.zeros(1, len(tokens), 2)
    logits[0, :, 0] = -100.0  # only "good" is a likely start
    logits[0, 0] = torch.tensor([1.0, 2.0])  # [CLS]: the window's "no answer" score
    logits[0, 1] = 100.0  # a question token: never part of an answer
    logits[0, tokens.index("very"), 1] = 50.0  # an end before the best start: not a span
    logits[0, tokens.index("good"), 0] = 10.0
    logits[0, tokens.index("fine"), 1] = 8.0  # "good and fine" is 3 tokens: too long
    logits[0, tokens.index("and"), 1] = 4.0
    (span,) = task.predict(logits, batch)
    assert row["context"][span.start : span.end] == "good and"
    assert span.score == 14.0 and span.null_score == 3.0


def test_padding_takes_no_part_in_the_loss() -> None:
    task = make_task(max_length=32)
    rows = [qa_row("is it", "a fine film", "fine"), qa_row("is it", "the movie was good", "good")]
    features = task.prepare(split_rows(rows), tiny_tokenizer())
    batch = task.collate([{key: values[i] for key, values in features.items()} for i in (0, 1)], 0)
    logits = torch.randn(2, batch["input_ids"].shape[1], 2)
    padded = ~batch["attention_mask"].bool()
    assert padded.any()
    loud = logits.masked_fill(padded[:, :, None], 1e4)
    assert task.loss(loud, batch).item() == pytest.approx(task.loss(logits, batch).item())


def test_answers_are_checked_against_the_context() -> None:
    task = make_task(max_length=32)
    good = qa_row("is it", "a fine film", "fine")
    moved = {**good, "answers": {"text": ["fine"], "answer_start": [3]}}
    with pytest.raises(DataError, match=r"train\.jsonl, line 2: answer 'fine' is not at"):
        task.prepare(split_rows([good, moved]), tiny_tokenizer())
    # context[-4:-2] is "fi", but a negative offset is no offset into the context
    for text, start in (("film", 40), ("fi", -4)):
        outside = {**good, "answers": [{"text": text, "answer_start": start}]}
        with pytest.raises(
            DataError, match=rf"line 2: answer '{text}' is not at answer_start {start}"
        ):
            task.prepare(split_rows([good, outside]), tiny_tokenizer())
    malformed = {**good, "answers": {"text": ["fine"], "answer_start": ["2"]}}
    with pytest.raises(DataError, match=r"line 2: column 'answers' must be"):
        task.prepare(split_rows([good, malformed]), tiny_tokenizer())
    # a list of {"text", "answer_start"} objects is SQuAD's other shape
    listed = {**good, "answers": [{"text": "fine", "answer_start": 2}]}
    assert task.prepare(split_rows([listed]), tiny_tokenizer())["start_positions"][0] > 0


def test_a_context_that_is_not_a_text_names_the_row() -> None:
    row = {**qa_row("is it good", "the plot was good", "good"), "context": ["the", "plot"]}
    with pytest.raises(DataError) as caught:
        make_task(max_length=32).prepare(split_rows([row]), tiny_tokenizer())
    assert str(caught.value) == (
        "train.jsonl, line 1: column 'context' must hold a text, got a list ['the', 'plot']"
    )


def test_unanswerable_questions_need_allow_unanswerable() -> None:
    answers = {"text": [], "answer_start": []}
    unanswerable = {"question": "is it", "context": "a dull film", "answers": answers}
    with pytest.raises(DataError, match=r"line 1: no answer .*allow_unanswerable: true"):
        make_task(max_length=32).prepare(split_rows([unanswerable]), tiny_tokenizer())
    task = make_task(max_length=32, allow_unanswerable=True)
    features = task.prepare(split_rows([unanswerable]), tiny_tokenizer())
    assert (features["start_positions"], features["end_positions"]) == ([0], [0])
    assert task.references(features)[0].answers == []


def test_windows_must_leave_room_for_the_context() -> None:
    raw = {
        "model": {"name_or_path": "m"},
        "tasks": [{"name": "qa", "kind": "extractive_qa", "data": {"train": "x"}, "stride": 128}],
    }
    with pytest.raises(ConfigError, match=r"tasks\[qa\]\.stride: 128 .* below max_length \(128\)"):
        config_from_dict(raw)
    task = make_task(max_length=12, stride=4)
    long_question = qa_row("is it a good and fine film", "a fine film", "fine")
    with pytest.raises(DataError, match=r"line 2: the question takes 7 tokens .* stride 4"):
        task.prepare(
            split_rows([qa_row("is it", "a fine film", "fine"), long_question]), tiny_tokenizer()
        )


def answer_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Contexts of filler words with one positive word, which is the answer; some are longer
    than one window."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 26))]
        position = rng.randrange(len(words) + 1)
        answer = rng.choice(POSITIVE)
        context = " ".join(words[:position] + [answer] + words[position:])
        start = len(" ".join(words[:position] + [""])) if position else 0
        rows.append(
            {
                "question": "what is it",
                "context": context,
                "answers": {"text": [answer], "answer_start": [start]},
            }
        )
    return rows


def test_training_learns_to_extract_answers_and_the_model_reloads(tiny_model_dir, tmp_path):
    from conftest import write_jsonl

    files = {
        split: str(write_jsonl(tmp_path / f"{split}.jsonl", answer_rows(count, seed)))
        for split, count, seed in (("train", 96, 0), ("validation", 24, 1), ("test", 32, 2))
    }
    config = config_from_dict(
        {
            "model": {"name_or_path": str(tiny_model_dir)},
            "cache_dir": str(tmp_path / "features"),
            "tasks": [
                {
                    "name": "qa",
                    "kind": "extractive_qa",
                    "data": files,
                    "max_length": 20,
                    "stride": 6,
                    "max_answer_length": 4,
                }
            ],
            "training": {
                "output_dir": str(tmp_path / "run"),
                "max_steps": 80,
                "batch_size": 16,
                "learning_rate": 3e-3,
                "warmup_ratio": 0.0,
                "eval_steps": 40,
                "progress_bar": False,
            },
        }
    )
    trainer = Trainer(config)
    test = trainer.data["qa"].splits["test"]
    assert len(test) > 32  # some contexts span several windows
    results = trainer.train()
    trivial = trivial_baseline(trainer.data, "test")["tasks"]["qa"]
    assert results["tasks"]["qa"]["primary"] == "f1"
    assert trivial["f1"] < 0.3
    assert results["tasks"]["qa"]["f1"] > 0.8
    rows = answer_rows(8, seed=3)
    inputs = [{"question": row["question"], "context": row["context"]} for row in rows]
    model = MultiTaskModel.from_pretrained(tmp_path / "run" / "model")
    predictions = model.predict("qa", inputs)
    assert len(predictions) == len(inputs) and all(isinstance(p, str) for p in predictions)
    assert predictions == trainer.model.predict("qa", inputs)
    assert (
        sum(p == row["answers"]["text"][0] for p, row in zip(predictions, rows, strict=True)) >= 4
    )
    assert results["tasks"]["qa"]["exact_match"] > trivial["exact_match"]
