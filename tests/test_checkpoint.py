"""A fold's classifier saved with `checkpoint.save_classifier` comes back from `load_classifier` with
the same predictions (fp32: exactly; fp16/bf16: within the storage rounding), as safetensors only,
and an incomplete or foreign folder is refused with one line naming it."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors import safe_open

from kagglebert.core.atomic import atomic_dir
from kagglebert.core.checkpoint import HEAD_FILE, META_FILE, load_classifier, save_classifier
from kagglebert.core.config import ModelConfig
from kagglebert.core.errors import RunError
from kagglebert.core.modeling import build_classifier, predict
from kagglebert.core.paths import BUNDLED_SAMPLE
from kagglebert.core.tasks import JIGSAW_TOXIC_2018
from kagglebert.core.tokenization import tokenize

from conftest import read_raw_csv

CPU = torch.device("cpu")
MODEL_CFG = ModelConfig(max_length=64, truncation="head+tail", head_tokens=16, pooling="cls", dropout=0.2)


@pytest.fixture(scope="module")
def texts():
    return read_raw_csv(BUNDLED_SAMPLE / "test.csv")["comment_text"].head(40).tolist()


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tokenizer):
    """A classifier whose every weight differs from the checkpoint it was built from (a head
    left at its init, zero bias, would hide a head that failed to load)."""
    torch.manual_seed(1)
    model = build_classifier(str(tiny_model_dir), len(JIGSAW_TOXIC_2018.label_columns), MODEL_CFG.pooling, MODEL_CFG.dropout)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model.eval()


def probabilities(model, tokenizer, texts) -> np.ndarray:
    tokens = tokenize(tokenizer, texts, max_length=MODEL_CFG.max_length, truncation=MODEL_CFG.truncation, head_tokens=MODEL_CFG.head_tokens)
    return predict(model, tokens, tokenizer.pad_token_id, 16, CPU, "fp32")


def saved(model, tokenizer, folder, dtype):
    with atomic_dir(folder) as tmp:
        save_classifier(model, tokenizer, tmp, task=JIGSAW_TOXIC_2018, model_cfg=MODEL_CFG, dtype=dtype)
    return folder


def test_fp32_round_trip_predicts_exactly_the_same(trained, tokenizer, texts, tmp_path):
    expected = probabilities(trained, tokenizer, texts)
    folder = saved(trained, tokenizer, tmp_path / "fold0_model", "fp32")
    model, loaded_tokenizer, meta = load_classifier(folder, device=CPU, task=JIGSAW_TOXIC_2018)
    assert not model.training
    np.testing.assert_array_equal(probabilities(model, loaded_tokenizer, texts), expected)
    assert meta["label_columns"] == JIGSAW_TOXIC_2018.label_columns and meta["task"] == JIGSAW_TOXIC_2018.name
    assert (meta["pooling"], meta["dropout"], meta["max_length"], meta["truncation"], meta["head_tokens"], meta["dtype"]) == \
        ("cls", 0.2, 64, "head+tail", 16, "fp32")
    assert model.pooling == "cls" and model.dropout.p == 0.2


@pytest.mark.parametrize("dtype, storage, tolerance", [("fp16", torch.float16, 2e-3), ("bf16", torch.bfloat16, 2e-2)])
def test_half_precision_storage_is_upcast_on_load(trained, tokenizer, texts, tmp_path, dtype, storage, tolerance):
    expected = probabilities(trained, tokenizer, texts)
    folder = saved(trained, tokenizer, tmp_path / "model", dtype)
    for name in ("model.safetensors", HEAD_FILE):
        with safe_open(str(folder / name), "pt") as stored:
            assert {stored.get_slice(k).get_dtype() for k in stored.keys()} == {{torch.float16: "F16", torch.bfloat16: "BF16"}[storage]}
    model, loaded_tokenizer, _ = load_classifier(folder, device=CPU)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    got = probabilities(model, loaded_tokenizer, texts)
    assert not np.array_equal(got, expected)  # the rounding is real…
    np.testing.assert_allclose(got, expected, atol=tolerance)  # …and small
    # the in-memory model is untouched by saving in half precision
    assert {p.dtype for p in trained.parameters()} == {torch.float32}


def test_folder_holds_safetensors_and_nothing_pickled(trained, tokenizer, tmp_path):
    folder = saved(trained, tokenizer, tmp_path / "model", "fp16")
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", HEAD_FILE, META_FILE, "tokenizer.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    assert not [n for n in names if n.startswith(".")]  # no temporary left behind
    with safe_open(str(folder / HEAD_FILE), "pt") as head:
        assert set(head.keys()) == {"head.weight", "head.bias"}
        assert list(head.get_slice("head.weight").get_shape()) == [6, 32]
    # transformers alone reads the encoder back
    from transformers import AutoModel
    encoder = AutoModel.from_pretrained(folder, add_pooling_layer=False, dtype=torch.float32)
    torch.testing.assert_close(encoder.embeddings.word_embeddings.weight, trained.encoder.embeddings.word_embeddings.weight.half().float())


@pytest.mark.parametrize("missing", ["model.safetensors", HEAD_FILE, META_FILE, "config.json", "tokenizer.json"])
def test_incomplete_folder_is_one_line_naming_folder_and_file(trained, tokenizer, tmp_path, missing):
    folder = saved(trained, tokenizer, tmp_path / "fold1_model", "fp16")
    (folder / missing).unlink()
    with pytest.raises(RunError) as err:
        load_classifier(folder, device=CPU)
    message = str(err.value)
    assert "\n" not in message and str(folder) in message and missing in message


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(RunError, match="fold3_model: no saved model"):
        load_classifier(tmp_path / "fold3_model", device=CPU)


def test_model_of_another_task_or_labels_is_refused(trained, tokenizer, tmp_path):
    folder = saved(trained, tokenizer, tmp_path / "model", "fp16")
    other_labels = replace(JIGSAW_TOXIC_2018, label_columns=["toxic", "insult"])
    with pytest.raises(RunError, match=r"labels \['toxic', 'severe_toxic'.*not 'jigsaw-toxic-2018' with \['toxic', 'insult'\]"):
        load_classifier(folder, device=CPU, task=other_labels)
    other_task = replace(JIGSAW_TOXIC_2018, name="jigsaw-unintended-bias-2019")
    with pytest.raises(RunError, match="a model for task 'jigsaw-toxic-2018'"):
        load_classifier(folder, device=CPU, task=other_task)


def test_corrupt_files_are_one_line(trained, tokenizer, tmp_path):
    folder = saved(trained, tokenizer, tmp_path / "model", "fp16")
    (folder / HEAD_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(RunError, match="cannot load the saved model") as err:
        load_classifier(folder, device=CPU)
    assert "\n" not in str(err.value)
    meta = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(RunError, match="unknown format 99"):
        load_classifier(folder, device=CPU)
