"""Models: a sequence classifier (any AutoModel encoder + pooling + linear head) and the masked-LM
loader. Loading goes through transformers' Auto classes, so a hub id, a Kaggle dataset folder or a
folder written by the LM stage all work."""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from . import distributed
from .batching import PadCollator, sorted_batches
from .engine import autocast, move
from .progress import ProgressBar
from .tokenization import TokenizedTexts, quiet_transformers

log = logging.getLogger("kagglebert")


class Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, n_labels: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_labels)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(self.dropout(pool(hidden, attention_mask, self.pooling)))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per text: the [CLS] position (`cls`), or the mean over real tokens (`mean`: what
    sentence-embedding checkpoints such as MiniLM were trained for). The classifier and the frozen
    features baseline both pool here."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def load_encoder(model_path: str, *, require_all_weights: bool = False) -> nn.Module:
    """The checkpoint's encoder in fp32 (master weights for training; an fp16-stored checkpoint is
    upcast). `require_all_weights`: refuse a folder whose weights do not cover the encoder (a saved
    fold model must never come back partly random)."""
    from transformers import AutoModel

    quiet_transformers()
    # no pooler: kagglebert pools itself, and an unused pooler would get no gradient
    try:
        encoder, info = AutoModel.from_pretrained(model_path, add_pooling_layer=False, dtype=torch.float32, output_loading_info=True)
    except TypeError:  # architectures without that argument
        encoder, info = AutoModel.from_pretrained(model_path, dtype=torch.float32, output_loading_info=True)
    missing = sorted(info.get("missing_keys", ()))
    if require_all_weights and missing:
        raise ValueError(f"{len(missing)} encoder weight(s) missing from the checkpoint, e.g. {missing[0]}")
    return encoder


def build_classifier(model_path: str, n_labels: int, pooling: str, dropout: float) -> Classifier:
    return Classifier(load_encoder(model_path), n_labels, pooling, dropout)


def load_masked_lm(model_path: str) -> tuple[nn.Module, bool]:
    """The checkpoint as a masked LM, and whether its MLM head had to be created fresh (the
    packaged MiniLM has none: the decoder is tied to the word embeddings, the transform layer and
    the output bias start untrained)."""
    from transformers import AutoModelForMaskedLM

    quiet_transformers()
    model, info = AutoModelForMaskedLM.from_pretrained(model_path, dtype=torch.float32, output_loading_info=True)
    missing = set(info.get("missing_keys", ()))
    head_prefixes = ("cls.", "lm_head.", "vocab_", "predictions.", "generator_")
    fresh_head = any(key.startswith(head_prefixes) for key in missing)
    return model, fresh_head


def masked_lm_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """Cross-entropy at the masked positions only: the vocabulary projection (hidden × 30k) is the
    most expensive matmul of a BERT step, and 85% of its rows would be thrown away. Architectures
    whose head is not one module (e.g. DistilBERT) fall back to the full forward pass."""
    labels = batch["labels"]
    selected = labels != -100
    head = next((getattr(model, n) for n in ("cls", "lm_head") if isinstance(getattr(model, n, None), nn.Module)), None)
    if head is None:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[selected]
    else:
        base = getattr(model, model.base_model_prefix)
        hidden = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        logits = head(hidden[selected])
    return nn.functional.cross_entropy(logits.float(), labels[selected])


def predict(model: Classifier, tokens: TokenizedTexts, pad_id: int, batch_size: int, device: torch.device, precision: str, pad_multiple: int = 8) -> np.ndarray:
    """Sigmoid probabilities in the rows' original order. Under torchrun each rank scores a share
    of the rows and every rank gets all of them back."""
    if not distributed.is_distributed():
        return predict_rows(model, tokens, pad_id, batch_size, device, precision, pad_multiple)
    mine = distributed.shard_rows(tokens.lengths)
    local = predict_rows(model, tokens.subset(mine), pad_id, batch_size, device, precision, pad_multiple)
    return distributed.gather_rows(local, mine, len(tokens))


def predict_rows(model: Classifier, tokens: TokenizedTexts, pad_id: int, batch_size: int, device: torch.device, precision: str, pad_multiple: int = 8) -> np.ndarray:
    """`predict` in this process alone."""
    model.eval()
    return sorted_inference(lambda batch: model(batch["input_ids"], batch["attention_mask"]),
                            lambda logits, batch: torch.sigmoid(logits), model.head.out_features,
                            tokens, pad_id, batch_size, device, precision, pad_multiple)


def encode(encoder: nn.Module, tokens: TokenizedTexts, pad_id: int, pooling: str, batch_size: int,
           device: torch.device, precision: str, pad_multiple: int = 8, progress: bool = False) -> np.ndarray:
    """One pooled vector per text from a bare encoder (the frozen features baseline), in the texts'
    order; pooled as `Classifier` pools."""
    encoder.eval()
    return sorted_inference(lambda batch: encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state,
                            lambda hidden, batch: pool(hidden, batch["attention_mask"], pooling), encoder.config.hidden_size,
                            tokens, pad_id, batch_size, device, precision, pad_multiple, progress, "encode")


@torch.no_grad()
def sorted_inference(forward, finish, width: int, tokens: TokenizedTexts, pad_id: int, batch_size: int, device: torch.device,
                     precision: str, pad_multiple: int = 8, progress: bool = False, desc: str = "predict") -> np.ndarray:
    """The one no-grad inference loop: batches sorted by length (little padding), `forward(batch)`
    under the precision's autocast, `finish(output in fp32, batch)` → (rows, width), rows back in
    their original order."""
    collate = PadCollator(tokens, pad_id, pad_multiple=pad_multiple)
    out = np.zeros((len(tokens), width), dtype=np.float32)
    pending = []  # (rows, device tensor): copied back once at the end, not once per batch
    for rows in ProgressBar(sorted_batches(tokens.lengths, batch_size), desc=desc, disable=not progress, leave=False):
        batch = move(collate(rows), device)
        with autocast(device, precision):
            output = forward(batch)
        pending.append((rows, finish(output.float(), batch)))
    for rows, values in pending:
        out[rows] = values.cpu().numpy()
    return out
