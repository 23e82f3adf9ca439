"""The advice for a weak run (core/advice.py) names only settings that differ from the working
recipe, each with its value now, and reads sensibly for the settings it is given."""
from __future__ import annotations

from kagglebert.core import config
from kagglebert.core.advice import likely_fixes, near_chance


def test_the_recipe_itself_gets_no_setting_to_change():
    cfg = config.load("minilm-sample")  # all rows, 2 epochs, mean pooling, lr 6e-5, head 1e-3, head+tail
    assert likely_fixes(cfg).startswith("the settings follow the recipe")
    assert near_chance(0.55) and not near_chance(0.65)


def test_each_departure_is_named_with_its_value():
    cfg = config.load("minilm-sample").replace(data={"max_rows": 600}, train={"epochs": 1, "lr": 3e-4, "head_lr": 1e-4},
                                               model={"pooling": "cls", "truncation": "head"})
    text = likely_fixes(cfg)
    for fragment in ("data.max_rows = 600 now", "train.epochs = 1 now", "model.pooling = 'cls' now", "train.lr = 0.0003 now",
                     "train.head_lr = 0.0001 now", "model.truncation = 'head' now"):
        assert fragment in text, (fragment, text)
    assert "LM stage" not in text and "lm." not in text  # no LM stage: nothing about it


def test_the_lm_stage_advice_fits_its_settings():
    one = likely_fixes(config.load("minilm-sample").replace(lm={"epochs": 1}))
    # one LM epoch: "fewer than lm.epochs = 1" would mean none at all; a lower lr or no LM stage instead
    assert "fewer" not in one and "a lower LM lr (lm.lr = 0.0001 now)" in one and "or no LM stage (lm.epochs = 0)" in one
    assert "lm.head_lr" not in one  # 1e-3 is what a fresh MLM head wants
    three = likely_fixes(config.load("minilm-sample").replace(lm={"epochs": 3, "head_lr": 1e-5}))
    assert "fewer LM epochs (lm.epochs = 3 now)" in three and "lm.head_lr = 1e-05 now" in three
