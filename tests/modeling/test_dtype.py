"""`model.dtype`: the weights load, train, save and reload in the dtype asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_tokenizer

from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.training.trainer import Trainer


def _dtypes(model: MultiTaskModel) -> set[torch.dtype]:
    return {parameter.dtype for parameter in model.parameters()}


def test_bfloat16_weights_train_save_reload_and_predict(make_config, tmp_path: Path) -> None:
    config = make_config(max_steps=10, eval_steps=5)
    config = config.model_copy(
        update={"model": config.model.model_copy(update={"dtype": "bfloat16"})}
    )
    trainer = Trainer(config)
    assert _dtypes(trainer.model) == {torch.bfloat16}
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    results = trainer.train()
    assert set(results["tasks"]) == {"sentiment", "score", "tagging"}
    assert results["aggregate"] is not None
    changed = [
        name for name, p in trainer.model.named_parameters() if not torch.equal(p, before[name])
    ]
    assert any(name.startswith("heads.") for name in changed)
    assert any(not name.startswith("heads.") for name in changed)

    reloaded = MultiTaskModel.from_pretrained(tmp_path / "run")
    assert _dtypes(reloaded) == {torch.bfloat16}
    texts = ["a great film", "dull and slow"]
    trained = trainer.accelerator.unwrap_model(trainer.model).eval()
    assert reloaded.predict("sentiment", texts) == trained.predict("sentiment", texts)
    assert reloaded.predict("score", texts) == trained.predict("score", texts)


@pytest.mark.parametrize("sharing", [{"kind": "lora", "r": 4}, {"kind": "soft"}])
def test_other_sharing_kinds_reload_in_their_saved_dtype(
    make_config, tiny_model_dir: Path, tmp_path: Path, sharing: dict
) -> None:
    from mtlm.config import sharing_spec
    from mtlm.tasks import KINDS

    spec = make_config().tasks[0]
    tasks = {"sentiment": KINDS[spec.kind](spec, {"label_names": ["neg", "pos"]})}
    model = MultiTaskModel.from_backbone(
        str(tiny_model_dir), tasks, sharing=sharing_spec(sharing), dtype="bfloat16"
    )
    model.save_pretrained(tmp_path / "saved")
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "saved")
    assert reloaded.sharing.base.dtype == torch.bfloat16
    assert reloaded.heads["sentiment"].state_dict().popitem()[1].dtype == torch.bfloat16


def test_auto_keeps_the_checkpoints_dtype_and_float32_is_the_default(
    tiny_model_dir: Path, tmp_path: Path, make_config
) -> None:
    from transformers import AutoModel

    AutoModel.from_pretrained(tiny_model_dir, dtype=torch.float16).save_pretrained(
        tmp_path / "half"
    )
    tiny_tokenizer().save_pretrained(tmp_path / "half")
    from mtlm.tasks import KINDS

    spec = make_config().tasks[0]

    def built(location: Path, **dtype: str) -> MultiTaskModel:
        tasks = {"sentiment": KINDS[spec.kind](spec, {"label_names": ["neg", "pos"]})}
        return MultiTaskModel.from_backbone(str(location), tasks, **dtype)

    assert _dtypes(built(tmp_path / "half", dtype="auto")) == {torch.float16}
    assert _dtypes(built(tmp_path / "half")) == {torch.float32}
    assert make_config().model.dtype == "float32"


def test_a_bfloat16_task_exports_in_bfloat16_and_predicts_what_mtlm_predicts(
    make_config, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import pipeline

    from mtlm.export import export_task
    from mtlm.tasks import KINDS

    spec = make_config().tasks[0]
    tasks = {"sentiment": KINDS[spec.kind](spec, {"label_names": ["neg", "pos"]})}
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(str(tiny_model_dir), tasks, dtype="bfloat16").eval()
    folder = export_task(model, "sentiment", tmp_path / "exported")
    # The checkpoint's dtype: transformers 5 loads it by default, 4.x where asked this way.
    classify = pipeline("text-classification", model=str(folder), model_kwargs={"dtype": "auto"})
    assert classify.model.dtype == torch.bfloat16
    texts = ["the movie was great", "a very dull plot"]
    assert [row["label"] for row in classify(texts)] == [
        row["label"] for row in model.predict("sentiment", texts)
    ]


def test_a_bfloat16_regression_task_exports_within_bfloat16s_precision(
    make_config, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The exported head folds the target scale into bfloat16 weights and rounds its output
    there: a few units of bfloat16's last place from mtlm's, and no more."""
    from transformers import AutoModelForSequenceClassification

    from mtlm.export import export_task
    from mtlm.tasks import KINDS

    spec = make_config().tasks[1]
    tasks = {"score": KINDS[spec.kind](spec, {"mean": 2.5, "std": 0.7})}
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(str(tiny_model_dir), tasks, dtype="bfloat16").eval()
    folder = export_task(model, "score", tmp_path / "exported")
    exported = AutoModelForSequenceClassification.from_pretrained(folder, dtype="auto")
    assert exported.dtype == torch.bfloat16
    texts = ["the movie was great", "a very dull plot and it is boring"]
    batch = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = exported(**batch).logits.float().squeeze(-1).tolist()
    ours = [row["score"] for row in model.predict("score", texts)]
    assert theirs == pytest.approx(ours, abs=0.05)
