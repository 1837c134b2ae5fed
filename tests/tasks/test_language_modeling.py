"""Language modelling: masking (rate, 80/10/10 split, special tokens and padding spared,
reproducible per batch), the causal layout, perplexity and the unigram baseline, plain text
files, and training next to another task on an encoder and on a decoder."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DECODER_VOCAB,
    FILLER,
    POSITIVE,
    VOCAB,
    assert_declared,
    sentiment_rows,
    short_run_config,
    tiny_decoder_tokenizer,
    tiny_tokenizer,
    write_jsonl,
)

from mtlm import ConfigError, DataError, MultiTaskModel, Trainer
from mtlm.config import task_spec
from mtlm.data.rows import SplitRows
from mtlm.data.sources import read_file
from mtlm.evaluation.evaluate import aggregate_score, evaluate, trivial_baseline
from mtlm.modeling.backbones import check_task_kinds
from mtlm.tasks.language_modeling import LanguageModeling


def split_rows(rows: list[dict[str, Any]]) -> SplitRows:
    return SplitRows(rows, "train.jsonl", [f"line {i + 1}" for i in range(len(rows))], "fp")


def make_task(family: str = "encoder", **fields: Any) -> LanguageModeling:
    spec = task_spec({"name": "lm", "kind": "language_modeling", "data": {"train": "x"}, **fields})
    task = LanguageModeling(spec)
    task.state["family"] = family
    encoder = family == "encoder"
    tokenizer = tiny_tokenizer() if encoder else tiny_decoder_tokenizer()
    task.bind_vocabulary(tokenizer, len(VOCAB if encoder else DECODER_VOCAB))
    return task


def feature_rows(task: LanguageModeling, texts: list[str], tokenizer) -> list[dict[str, Any]]:
    features = task.prepare(split_rows([{"text": text} for text in texts]), tokenizer)
    return [{key: values[i] for key, values in features.items()} for i in range(len(texts))]


def test_a_text_may_be_a_list_of_words_but_not_an_object() -> None:
    task = make_task()
    words = task.prepare(split_rows([{"text": ["the", "movie"]}]), tiny_tokenizer())
    assert words["input_ids"] == [tiny_tokenizer()("the movie")["input_ids"]]
    with pytest.raises(DataError) as caught:
        task.prepare(split_rows([{"text": "a"}, {"text": {"words": ["a"]}}]), tiny_tokenizer())
    assert str(caught.value) == (
        "train.jsonl, line 2: column 'text' must hold a text or a list of words, "
        "got an object {'words': ['a']}"
    )


def random_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(FILLER + POSITIVE) for _ in range(rng.randint(1, 12)))
        for _ in range(count)
    ]


@pytest.mark.parametrize("probability", [0.15, 0.4])
def test_masking_hides_the_configured_share_of_real_tokens_80_10_10(probability):
    task = make_task(mlm_probability=probability)
    tokenizer = tiny_tokenizer()
    rows = feature_rows(task, random_texts(1600), tokenizer)
    chosen = candidates = masked = unchanged = 0
    for start in range(0, len(rows), 64):
        part = rows[start : start + 64]
        batch = task.collate(part, pad_token_id=0)
        width = batch["input_ids"].shape[1]
        ids = torch.tensor(
            [row["input_ids"] + [0] * (width - len(row["input_ids"])) for row in part]
        )
        # Padding counts as special here: neither may be chosen.
        special = torch.tensor(
            [row["special_tokens_mask"] + [1] * (width - len(row["input_ids"])) for row in part]
        ).bool()
        labels, inputs = batch["labels"], batch["input_ids"]
        hidden = labels != -100
        assert "special_tokens_mask" not in batch
        # Special tokens and padding are never chosen nor changed.
        assert not hidden[special].any()
        assert torch.equal(inputs[special], ids[special])
        # A label is the original token where chosen, -100 everywhere else.
        assert torch.equal(labels[hidden], ids[hidden])
        assert torch.equal(inputs[~hidden], ids[~hidden])
        chosen += int(hidden.sum())
        candidates += int((~special).sum())
        masked += int((inputs[hidden] == tokenizer.mask_token_id).sum())
        unchanged += int((inputs[hidden] == ids[hidden]).sum())
    assert candidates > 10_000
    assert chosen / candidates == pytest.approx(probability, abs=0.015)
    assert masked / chosen == pytest.approx(0.8, abs=0.03)
    # A random token is the original one 1 time in 26 (the tiny vocabulary's size).
    assert unchanged / chosen == pytest.approx(0.1 + 0.1 / len(VOCAB), abs=0.025)
    random_share = 1 - (masked + unchanged) / chosen
    assert random_share == pytest.approx(0.1 * (1 - 2 / len(VOCAB)), abs=0.025)


def test_a_batch_is_masked_the_same_way_twice_and_the_global_rng_is_untouched():
    task = make_task()
    rows = feature_rows(task, random_texts(32, seed=1), tiny_tokenizer())
    state = torch.random.get_rng_state()
    first = task.collate(rows, pad_token_id=0)
    second = task.collate(rows, pad_token_id=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first["labels"], second["labels"])
    assert torch.equal(first["input_ids"], second["input_ids"])
    # Other batch content (the order of an epoch's reshuffle) gets other masks.
    reordered = task.collate(rows[1:] + rows[:1], pad_token_id=0)
    assert not torch.equal(reordered["labels"], torch.roll(first["labels"], -1, dims=0))


def test_a_batch_that_draws_no_token_still_hides_one():
    task = make_task(mlm_probability=0.01)
    batch = task.collate(feature_rows(task, ["good"], tiny_tokenizer()), pad_token_id=0)
    assert (batch["labels"] != -100).sum() == 1
    assert batch["labels"][0, 1] == tiny_tokenizer().convert_tokens_to_ids("good")


def test_an_encoder_tokenizer_without_a_mask_token_is_refused():
    task = make_task("causal")  # a causal model needs none
    assert "mask_token_id" not in task.state
    task.state["family"] = "encoder"
    with pytest.raises(ConfigError, match=r"tasks\[lm\].kind: .*has none"):
        task.bind_vocabulary(tiny_decoder_tokenizer(), len(DECODER_VOCAB))
    with pytest.raises(ConfigError, match=r"tasks\[lm\]: .*build the MultiTaskModel"):
        LanguageModeling(task.spec).build_head(32)


def test_a_sequence_to_sequence_model_is_refused():
    with pytest.raises(ConfigError, match=r"tasks\[lm\].kind: language_modeling works with"):
        check_task_kinds("seq2seq", [make_task("causal").spec], "T5ForConditionalGeneration")


def test_causal_batches_predict_every_token_after_the_first():
    task = make_task("causal")
    tokenizer = tiny_decoder_tokenizer()
    rows = feature_rows(task, ["good movie", "the plot was bad"], tokenizer)
    batch = task.collate(rows, pad_token_id=0)
    ids = tokenizer.convert_tokens_to_ids
    assert batch["labels"].tolist() == [
        ids(["good", "movie"]) + [-100] * 2,
        ids(["the", "plot", "was", "bad"]),
    ]
    assert batch["prompt_length"].tolist() == [0, 0]
    assert task.references({"input_ids": [row["input_ids"] for row in rows]}) == [
        ids(["movie"]),
        ids(["plot", "was", "bad"]),
    ]
    torch.manual_seed(0)
    logits = torch.randn(2, 4, len(DECODER_VOCAB))
    predicted = task.predict(logits, batch)
    first = F.cross_entropy(logits[0, :1], torch.tensor(ids(["movie"])), reduction="sum")
    second = F.cross_entropy(
        logits[1, :3], torch.tensor(ids(["plot", "was", "bad"])), reduction="sum"
    )
    assert [p["tokens"] for p in predicted] == [1, 3]
    assert predicted[0]["nll"] == pytest.approx(first.item(), rel=1e-6)
    assert predicted[1]["nll"] == pytest.approx(second.item(), rel=1e-6)
    assert task.loss(logits, batch).item() == pytest.approx((first + second).item() / 4, 1e-6)


def test_encoder_predictions_score_the_hidden_tokens_only():
    task = make_task(mlm_probability=0.5)
    rows = feature_rows(task, random_texts(6, seed=3), tiny_tokenizer())
    batch = task.collate(rows, pad_token_id=0)
    torch.manual_seed(0)
    logits = torch.randn(*batch["input_ids"].shape, len(VOCAB))
    predicted = task.predict(logits, batch)
    for row, prediction in enumerate(predicted):
        hidden = batch["labels"][row] != -100
        expected = F.cross_entropy(
            logits[row][hidden], batch["labels"][row][hidden], reduction="sum"
        )
        assert prediction["tokens"] == int(hidden.sum())
        assert prediction["nll"] == pytest.approx(expected.item(), rel=1e-6)


def test_perplexity_is_the_exponent_of_the_mean_loss_per_token():
    task = make_task()
    predictions = [{"nll": 6.0, "tokens": 3}, {"nll": 2.0, "tokens": 1}, {"nll": 0.0, "tokens": 0}]
    scores = task.score(predictions, [[]] * 3)
    assert scores["primary"] == "perplexity"
    assert scores["loss"] == pytest.approx(2.0)
    assert scores["perplexity"] == pytest.approx(math.exp(2.0))
    assert_declared(task, scores)
    assert not task.higher_is_better("perplexity") and not task.higher_is_better("loss")
    assert math.isnan(task.metrics([{"nll": 0.0, "tokens": 0}], [[]])["perplexity"])
    # The aggregate counts a lower-is-better primary metric negated.
    assert aggregate_score({"lm": scores}, {"lm": task}) == pytest.approx(-math.exp(2.0))


def test_the_ideal_perplexity_is_1_and_the_ideal_loss_0():
    task = make_task()
    assert task.ideal_score("perplexity") == 1.0 and task.ideal_score("loss") == 0.0


def test_the_trivial_baseline_is_a_smoothed_unigram_model_of_the_training_tokens():
    task = make_task()
    train = {
        "input_ids": [[2, 5, 5, 6, 3], [2, 5, 3]],
        "special_tokens_mask": [[1, 0, 0, 0, 1]] * 2,
    }
    train["special_tokens_mask"][1] = [1, 0, 1]
    references = [[5, 7], [6]]
    predicted = task.trivial_predictions(train, references)
    total = 4 + len(VOCAB)  # training tokens 5, 5, 6, 5 and add-one over the vocabulary
    assert predicted[0]["tokens"] == 2 and predicted[1]["tokens"] == 1
    assert predicted[0]["nll"] == pytest.approx(-math.log(4 / total) - math.log(1 / total))
    assert predicted[1]["nll"] == pytest.approx(-math.log(2 / total))
    assert task.references(train) == [[5, 5, 6], [5]]


def test_plain_text_files_give_one_row_per_non_empty_line(tmp_path: Path):
    path = tmp_path / "corpus.txt"
    path.write_text(" the plot was dull \n\n\ngood film\n", encoding="utf-8")
    spec = make_task(text_column="sentence").spec
    rows = read_file(str(path), "text", spec)
    assert rows.rows == [{"sentence": "the plot was dull"}, {"sentence": "good film"}]
    assert rows.where(1) == f"{path}, line 4"
    assert read_file(str(path), "text").rows[0] == {"text": "the plot was dull"}


# ---------------------------------------------------------------------------- training


@pytest.fixture
def sentiment_files(tmp_path: Path) -> dict[str, str]:
    return {
        split: str(write_jsonl(tmp_path / f"{split}.jsonl", sentiment_rows(count, seed)))
        for split, count, seed in (("train", 128, 0), ("validation", 96, 1), ("test", 96, 2))
    }


def experiment(model_dir: Path, tasks: list[dict], tmp_path: Path, **training: Any):
    return short_run_config(
        model_dir, tmp_path, tasks, {"max_steps": 80, "batch_size": 16, **training}
    )


def test_masked_lm_next_to_classification_lowers_perplexity_and_reloads_exactly(
    tiny_model_dir, sentiment_files, tmp_path
):
    tasks = [
        {"name": "sentiment", "kind": "classification", "data": sentiment_files},
        {
            "name": "lm",
            "kind": "language_modeling",
            "data": sentiment_files,
            "mlm_probability": 0.3,
        },
    ]
    trainer = Trainer(experiment(tiny_model_dir, tasks, tmp_path, max_steps=120))
    lm = trainer.model.tasks["lm"]
    assert lm.state["mask_token_id"] == VOCAB.index("[MASK]")
    assert lm.state["vocab_size"] == len(VOCAB)
    head = trainer.model.heads["lm"]
    embeddings = trainer.model.sharing.base.get_input_embeddings().weight
    assert torch.equal(head.out.weight, embeddings) and not head.out.bias.any()
    assert head.out.weight.data_ptr() != embeddings.data_ptr()
    before = trainer.evaluate("validation")["tasks"]["lm"]
    assert before == trainer.evaluate("validation")["tasks"]["lm"]
    trainer.train()
    after = trainer.evaluate("validation")["tasks"]["lm"]
    trivial = trivial_baseline(trainer.data, "validation")["tasks"]["lm"]
    assert after["perplexity"] < 0.8 * before["perplexity"]
    # Input-blind, yet it knows the training tokens' frequencies: better than uniform.
    assert 1 < trivial["perplexity"] < len(VOCAB)

    reloaded = MultiTaskModel.from_pretrained(tmp_path / "run")
    assert evaluate(reloaded, trainer.data, "test") == trainer.evaluate("test")
    texts = ["good movie", "the plot was bad and dull"]
    predicted = reloaded.predict("lm", texts)
    assert predicted == trainer.model.predict("lm", texts)
    assert [set(p) for p in predicted] == [{"nll", "tokens"}] * 2 and predicted[1]["tokens"] >= 1


def test_causal_lm_next_to_text_to_text_lowers_perplexity(
    tiny_decoder_dir, sentiment_files, tmp_path
):
    tasks = [
        {
            "name": "sentiment",
            "kind": "text_to_text",
            "prompt_template": "review: {text} sentiment:",
            "data": sentiment_files,
        },
        {"name": "lm", "kind": "language_modeling", "data": sentiment_files},
    ]
    trainer = Trainer(experiment(tiny_decoder_dir, tasks, tmp_path, max_steps=60))
    assert trainer.model.tasks["lm"].uses_language_model_head
    assert "mask_token_id" not in trainer.model.tasks["lm"].state
    before = trainer.evaluate("validation")["tasks"]["lm"]
    results = trainer.train()
    after = trainer.evaluate("validation")["tasks"]["lm"]
    trivial = trivial_baseline(trainer.data, "validation")["tasks"]["lm"]
    assert after["perplexity"] < 0.8 * before["perplexity"]
    assert 1 < trivial["perplexity"] < len(DECODER_VOCAB)
    assert results["tasks"]["lm"]["primary"] == "perplexity"
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "run")
    texts = ["good movie", "the plot was bad and dull"]
    assert [p["tokens"] for p in reloaded.predict("lm", texts)] == [1, 5]
    assert reloaded.predict("lm", texts) == trainer.model.predict("lm", texts)


def test_features_from_the_cache_still_mask(tiny_model_dir, sentiment_files, tmp_path):
    # A train-only task: tokenizing is skipped altogether the second time, so what masking
    # needs must come from the model, not from tokenizing.
    tasks = [
        {"name": "lm", "kind": "language_modeling", "data": {"train": sentiment_files["train"]}}
    ]
    config = experiment(tiny_model_dir, tasks, tmp_path)
    Trainer(config)
    trainer = Trainer(config)
    stream_rows = trainer.data["lm"].splits["train"].select(range(16)).to_list()
    batch = trainer.model.tasks["lm"].collate(stream_rows, pad_token_id=0)
    assert (batch["input_ids"] == VOCAB.index("[MASK]")).any()
    assert sum(p["tokens"] for p in trainer.model.predict("lm", ["good movie"])) == 1
