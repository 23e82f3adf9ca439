"""The optimizer settings, checked number by number: the learning-rate schedules step by step against
their closed forms, and layer-wise learning-rate decay on the tiny BERT parameter by parameter."""
from __future__ import annotations

import re

import pytest
import torch

from kagglebert.core.engine import make_optimizer, make_scheduler, param_groups
from kagglebert.core.modeling import Classifier, load_encoder, load_masked_lm

BASE_LRS = (0.1, 0.004)  # two groups: every group follows the same multiplier


def lrs_used(total_steps: int, warmup_ratio: float, kind: str, **extra) -> list[list[float]]:
    """Each group's learning rate at every optimizer step 0 … total_steps − 1 (the rate that step
    applies), then after the last step: total_steps + 1 rows."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in BASE_LRS]
    optimizer = torch.optim.SGD(groups, lr=1.0)
    scheduler = make_scheduler(optimizer, total_steps=total_steps, warmup_ratio=warmup_ratio, kind=kind, **extra)
    seen = []
    for _ in range(total_steps):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    seen.append([g["lr"] for g in optimizer.param_groups])
    return seen


def assert_multiplier(seen: list[list[float]], expected: list[float]) -> None:
    assert len(seen) == len(expected)
    for step, (lrs, factor) in enumerate(zip(seen, expected)):
        assert lrs == pytest.approx([base * factor for base in BASE_LRS], abs=1e-12), f"step {step}"


def test_linear_warms_up_then_decays_to_zero():
    # 10 steps, 30% warm-up = 3 steps: 1/3, 2/3, 1, then down by 1/7 a step to 0 after the last
    expected = [1 / 3, 2 / 3, 1.0, 1.0, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7, 0.0]
    assert_multiplier(lrs_used(10, 0.3, "linear"), expected)


@pytest.mark.parametrize("total, ratio", [(7, 0.0), (25, 0.06), (100, 0.1), (40, 0.5)])
def test_linear_closed_form(total, ratio):
    warmup = max(1, round(total * ratio)) if ratio > 0 else 0
    expected = [(t + 1) / warmup if t < warmup else (total - t) / (total - warmup) for t in range(total + 1)]
    seen = lrs_used(total, ratio, "linear")
    assert_multiplier(seen, expected)
    assert max(s[0] for s in seen) == pytest.approx(BASE_LRS[0]) and seen[-1] == [0.0, 0.0]


@pytest.mark.parametrize("total, cut_frac, ratio", [(20, 0.1, 32.0), (50, 0.2, 10.0), (30, 0.5, 32.0)])
def test_stlr_is_ulmfit_slanted_triangular(total, cut_frac, ratio):
    """Howard & Ruder 2018, eq. 3: cut = T·cut_frac, p = t/cut before the cut, else
    1 − (t − cut)/(cut·(1/cut_frac − 1)); η_t = η_max·(1 + p·(ratio − 1))/ratio. T·cut_frac is an
    integer in these cases, so the paper's floor and the code's rounding agree."""
    cut = int(total * cut_frac)
    p = [t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1)) for t in range(total + 1)]
    expected = [(1 + q * (ratio - 1)) / ratio for q in p]
    seen = lrs_used(total, cut_frac, "stlr", stlr_ratio=ratio)
    assert_multiplier(seen, expected)
    assert seen[cut][0] == pytest.approx(BASE_LRS[0])  # the peak, at the cut
    assert seen[0][0] == pytest.approx(BASE_LRS[0] / ratio) and seen[-1][0] == pytest.approx(BASE_LRS[0] / ratio)


def test_constant_warms_up_then_stays_flat():
    assert_multiplier(lrs_used(8, 0.25, "constant"), [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert_multiplier(lrs_used(5, 0.0, "constant"), [1.0] * 6)


def expected_depth(name: str, n_layers: int) -> int | None:
    """Depth from a BERT parameter name: 0 embeddings, i + 1 for encoder layer i, None outside the encoder."""
    if ".embeddings." in name:
        return 0
    match = re.search(r"\.encoder\.layer\.(\d+)\.", name)
    return int(match.group(1)) + 1 if match else None


def no_decay(name: str) -> bool:
    return name.endswith(".bias") or "LayerNorm" in name


def group_of(groups: list[dict]) -> dict[int, dict]:
    """id(parameter) → its group; each parameter in exactly one group."""
    found = {}
    for group in groups:
        for param in group["params"]:
            assert id(param) not in found, "a parameter is in two groups"
            found[id(param)] = group
    return found


def test_layer_decay_on_the_tiny_bert(tiny_model_dir):
    lr, head_lr, decay, weight_decay = 1e-3, 5e-3, 0.5, 0.01
    model = Classifier(load_encoder(str(tiny_model_dir)), n_labels=6)
    n_layers = model.encoder.config.num_hidden_layers
    assert n_layers == 2
    groups = param_groups(model=model, encoder=model.encoder, lr=lr, head_lr=head_lr, layer_decay=decay,
                          weight_decay=weight_decay)
    by_param = group_of(groups)
    named = list(model.named_parameters())
    assert len(by_param) == len(named)
    lr_by_depth: dict[int | None, set[float]] = {}
    for name, param in named:
        group = by_param[id(param)]
        depth = expected_depth(name, n_layers)
        want = head_lr if depth is None else lr * decay ** (n_layers - depth)
        assert group["lr"] == pytest.approx(want), name
        assert group["weight_decay"] == (0.0 if no_decay(name) else weight_decay), name
        lr_by_depth.setdefault(depth, set()).add(group["lr"])
    # embeddings lowest (lr · 0.25), then layer 0 (lr · 0.5), the top layer at lr, the head at head_lr
    assert {d: sorted(v) for d, v in lr_by_depth.items()} == {
        0: [pytest.approx(lr * 0.25)], 1: [pytest.approx(lr * 0.5)], 2: [pytest.approx(lr)], None: [head_lr]}
    # the optimizer keeps every group's rate and decay
    optimizer = make_optimizer(groups, torch.device("cpu"))
    assert [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [(g["lr"], g["weight_decay"]) for g in groups]


def test_masked_lm_head_gets_head_lr_and_the_tied_decoder_the_embeddings_lr(tiny_model_dir):
    lr, head_lr = 1e-4, 1e-3
    model, _ = load_masked_lm(str(tiny_model_dir))
    groups = param_groups(model=model, encoder=getattr(model, model.base_model_prefix), lr=lr, head_lr=head_lr,
                          layer_decay=1.0, weight_decay=0.01)
    by_param = group_of(groups)
    decoder = model.get_output_embeddings().weight
    assert decoder is model.get_input_embeddings().weight  # tied: one tensor, one group
    assert by_param[id(decoder)]["lr"] == lr and by_param[id(decoder)]["weight_decay"] == 0.01
    for name, param in model.named_parameters():
        in_head = name.startswith("cls.")
        assert by_param[id(param)]["lr"] == (head_lr if in_head else lr), name


def test_a_progress_bar_cut_short_by_ctrl_c_closes_quietly():
    """A Ctrl-C inside tqdm's __init__ leaves a bar without `disable`; its __del__ then calls
    close(), which tqdm up to 4.67 (our floor is 4.60) reads unguarded: an AttributeError printed
    under the one-line "interrupted" message. The engine's bar closes quietly in that state."""
    from kagglebert.core.progress import ProgressBar

    half_built = ProgressBar.__new__(ProgressBar)  # what __init__ leaves when interrupted before `self.disable = ...`
    half_built.close()  # no AttributeError
    ProgressBar._instances.discard(half_built)
    with ProgressBar(total=3, disable=False, leave=False) as bar:  # a real bar still works and closes
        bar.update(3)
    assert bar.n == 3 and bar.disable  # close() disables it
