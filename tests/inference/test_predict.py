"""One prediction path: the pipeline, `MultiTaskModel.predict` and `mtlm predict` give the same
answers, each task reading up to its own max_length."""

from __future__ import annotations

import json

import pytest
from conftest import four_task_model

from mtlm import ConfigError
from mtlm.cli import main
from mtlm.inference import predict_inputs
from mtlm.pipeline import MultiTaskPipeline

TEXTS = ["the movie was great", "lovely", "it is awful, really", "a dull plot and a fine film"]
#: 19 words of one sub-word each: longer than the sentiment task (8) and the tagging task (10)
#: read.
LONG = "a very dull plot and it is boring and the film is very very dull and the movie was"


def test_pipeline_model_predict_and_the_cli_give_the_same_answers(
    make_config, tiny_model_dir, tmp_path, capsys
):
    model = four_task_model(make_config(), tiny_model_dir, {"kind": "hard"})
    model.tasks["sentiment"].spec.max_length = 8
    model.tasks["tagging"].spec.max_length = 10
    model.save_pretrained(tmp_path / "model")
    texts = [*TEXTS, LONG]
    words = [text.split() for text in texts]

    direct = {
        "sentiment": model.predict("sentiment", texts, batch_size=2),
        "tagging": model.predict("tagging", words, batch_size=2),
    }
    served = MultiTaskPipeline(tmp_path / "model", tasks=["sentiment", "tagging"], batch_size=2)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"text": t, "tokens": w}) + "\n" for t, w in zip(texts, words, strict=True)
        )
    )
    command = ["predict", "--model", str(tmp_path / "model"), "--task", "all"]
    assert main([*command, "--input", str(rows), "--batch-size", "2"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    from_cli = {task: [line[task] for line in printed] for task in ("sentiment", "tagging")}

    assert served(texts) == direct
    assert from_cli == direct
    # the long input, cut where each task's max_length cuts it in training
    assert direct["tagging"][-1]["tags"] == model.predict("tagging", [words[-1][:8]])[0]["tags"]
    cut = model.predict("sentiment", [" ".join(words[-1][:6])])[0]
    assert direct["sentiment"][-1]["probabilities"] == pytest.approx(cut["probabilities"])
    model.tasks["sentiment"].spec.max_length = 10
    wider = model.predict("sentiment", [LONG])[0]
    assert direct["sentiment"][-1]["probabilities"] != pytest.approx(wider["probabilities"])


def test_predict_inputs_gives_each_task_its_own_inputs(make_config, tiny_model_dir):
    model = four_task_model(make_config(), tiny_model_dir, {"kind": "hard"})
    words = [text.split() for text in TEXTS]
    pairs = [(text, "it is boring") for text in TEXTS]
    both = predict_inputs(model, {"tagging": words, "pair": pairs, "score": TEXTS})
    assert list(both) == ["tagging", "pair", "score"]
    assert both["tagging"] == model.predict("tagging", words)
    assert both["pair"] == model.predict("pair", pairs)
    assert both["score"] == model.predict("score", TEXTS)
    with pytest.raises(ConfigError, match=r"^batch_size: must be at least 1 \(got 0\)$"):
        predict_inputs(model, {"score": TEXTS}, batch_size=0)
