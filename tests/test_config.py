"""Config: TOML loading, typed `--set` overrides, clear errors for unknown keys and wrong types,
and a saved config.toml that loads back to the same config."""
from __future__ import annotations

import pytest

from kagglebert.core import config as config_mod
from kagglebert.core.config import Config
from kagglebert.core.errors import ConfigError
from kagglebert.core.paths import BUNDLED_CONFIGS

DEMO = BUNDLED_CONFIGS / "demo.toml"


def test_demo_toml_loads_over_defaults():
    cfg = config_mod.load(DEMO)
    assert cfg.run.name == "demo"
    assert cfg.data.max_rows == 2000 and cfg.data.n_folds == 3
    assert cfg.model.truncation == "head+tail" and cfg.model.head_tokens == 64
    assert cfg.train.lr == pytest.approx(6e-5)
    # keys the file does not mention keep their defaults
    assert cfg.train.bucket_size == Config().train.bucket_size
    assert cfg.lm.mlm_probability == pytest.approx(0.15)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("train.lr=3e-5", "train.lr", 3e-5),
        ("train.lr=1", "train.lr", 1.0),  # an int is accepted where a float is expected
        ("train.epochs=3", "train.epochs", 3),
        ("run.progress=false", "run.progress", False),
        ("train.folds=[0, 2]", "train.folds", [0, 2]),
        ("run.name=fold-test", "run.name", "fold-test"),  # a bare word is a string
        ("model.name=/kaggle/input/bert-base", "model.name", "/kaggle/input/bert-base"),
        ('run.name="123"', "run.name", "123"),  # quoted: a string even when it looks like a number
    ],
)
def test_set_overrides_keep_types(override, key, expected):
    cfg = config_mod.load(DEMO, [override])
    section, name = key.split(".")
    value = getattr(getattr(cfg, section), name)
    assert value == expected
    assert type(value) is type(expected)


def test_later_override_wins():
    cfg = config_mod.load(DEMO, ["train.epochs=3", "train.epochs=5"])
    assert cfg.train.epochs == 5


def test_unknown_key_is_a_clear_error():
    with pytest.raises(ConfigError) as err:
        config_mod.load(DEMO, ["train.lrr=1e-4"])
    message = str(err.value)
    assert message.startswith("--set train.lrr=1e-4: unknown key 'train.lrr'; train has ")
    assert "lr, head_lr" in message  # it lists the keys that do exist


def test_unknown_section_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"unknown key 'trian\.lr'; sections are run, data, model"):
        config_mod.load(None, ["trian.lr=1e-4"])


def test_wrong_type_is_a_clear_error():
    with pytest.raises(ConfigError) as err:
        config_mod.load(DEMO, ["train.epochs=two"])
    assert str(err.value) == "--set train.epochs=two: train.epochs must be int, got str 'two'"
    with pytest.raises(ConfigError, match=r"train\.epochs must be int, got float 1\.5"):
        config_mod.load(DEMO, ["train.epochs=1.5"])
    with pytest.raises(ConfigError, match=r"run\.progress must be bool, got int 1"):
        config_mod.load(DEMO, ["run.progress=1"])


def test_errors_in_the_toml_file_name_the_file(tmp_path):
    bad_key = tmp_path / "bad_key.toml"
    bad_key.write_text("[train]\nepochs = 2\nlearning_rate = 1e-4\n")
    with pytest.raises(ConfigError, match=rf"^{bad_key}: unknown key 'train\.learning_rate'"):
        config_mod.load(bad_key)

    bad_type = tmp_path / "bad_type.toml"
    bad_type.write_text('[data]\nn_folds = "5"\n')
    with pytest.raises(ConfigError) as err:
        config_mod.load(bad_type)
    assert str(err.value) == f"{bad_type}: data.n_folds must be int, got str '5'"

    not_toml = tmp_path / "broken.toml"
    not_toml.write_text("[train\nepochs = 2\n")
    with pytest.raises(ConfigError, match=rf"^{not_toml}: not valid TOML"):
        config_mod.load(not_toml)

    with pytest.raises(ConfigError, match="config file not found"):
        config_mod.load(tmp_path / "missing.toml")


def test_invalid_choice_and_range():
    with pytest.raises(ConfigError, match=r"model\.truncation = 'middle'; choose one of head, tail, head\+tail"):
        config_mod.load(DEMO, ["model.truncation=middle"])
    with pytest.raises(ConfigError, match=r"data\.n_folds = 1; need at least 2"):
        config_mod.load(DEMO, ["data.n_folds=1"])


def test_override_without_equals():
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        config_mod.load(DEMO, ["train.lr"])


def test_saved_config_round_trips(tmp_path):
    cfg = config_mod.load(DEMO, ["train.lr=3e-5", "train.folds=[1]", "run.progress=false", "data.dir=/tmp/x"])
    path = tmp_path / "config.toml"
    path.write_text(config_mod.dumps(cfg))
    again = config_mod.load(path)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()


def test_replace_copies_and_checks():
    cfg = config_mod.load(DEMO)
    changed = cfg.replace(lm={"epochs": 2}, train={"lr": 1e-5})
    assert changed.lm.epochs == 2 and changed.train.lr == pytest.approx(1e-5)
    assert cfg.lm.epochs == 0  # the original is untouched
    with pytest.raises(ConfigError, match="lm.epochs must be int"):
        cfg.replace(lm={"epochs": "2"})


def test_notebook_profiles_load_the_bundled_configs():
    """The quick profile is configs/quick.toml, the full one configs/kaggle-bert-base.toml, and the baselines take their settings from
    configs/tfidf.toml and configs/features.toml: nothing is copied, so editing a TOML changes both."""
    from kagglebert.notebook import profiles

    assert profiles.profile_config("quick").to_dict() == config_mod.load("quick").to_dict()  # configs/quick.toml
    full = profiles.profile_config("full").to_dict()
    toml = config_mod.load("kaggle-bert-base").to_dict()
    toml["run"].update(name="full", progress=True)
    assert full == toml and full["data"]["require_competition"] is True
    runs = profiles.baselines(profiles.load("quick"))
    assert {c.run.name for c in runs.values()} == {"quick-tfidf", "quick-features"}
    assert all(c.lm.epochs == 0 and c.data.max_rows == 1500 for c in runs.values())
    features, reference = runs["features"], config_mod.load("features")
    assert (features.model.max_length, features.train.C, features.model.kind) == (reference.model.max_length, reference.train.C, "features")
    assert features.model.name == profiles.load("quick").model.name  # embeds with the profile's encoder
    assert runs["TF-IDF"].train.C == config_mod.load("tfidf").train.C


def test_every_numeric_key_has_a_range():
    """A new int or float key without a range would accept any value; the list must grow with it."""
    from kagglebert.core.config import RANGES, flat_keys

    numeric = {key for key, kind in flat_keys().items() if kind in (int, float)}
    assert numeric - set(RANGES) - {"data.n_folds", "data.max_rows"} == set()


@pytest.mark.parametrize("override, message", [
    ("train.lr=-1e-5", "config: train.lr = -1e-05; must be a finite number above 0.0"),
    ("train.lr=inf", "config: train.lr = inf; must be a finite number above 0.0"),
    ("model.dropout=1.0", "config: model.dropout = 1.0; must be a finite number in [0.0, 1.0)"),
    ("lm.heldout_frac=0.6", "config: lm.heldout_frac = 0.6; must be a finite number in (0.0, 0.5]"),
    ("train.pad_multiple=0", "config: train.pad_multiple = 0; must be a finite number at least 1"),
    ("data.max_rows=29", "config: data.max_rows = 29; use 0 (all rows) or at least 30 (10 per fold for data.n_folds = 3)"),
    ("train.folds=[true]", "config: train.folds = [True]; entries must be fold numbers (ints), got True"),
    ("run.device=gpu", "config: run.device = 'gpu'; choose auto, cpu, cuda, cuda:N or mps"),
    ("submit.name=..", "config: submit.name = '..': use a plain folder name"),
    ("run.name= padded", None),  # TOML strips the bare word: a plain name, accepted
    ("submit.dir=", "config: submit.dir is empty; give a folder"),
])
def test_ranges_and_names(override, message):
    if message is None:
        assert config_mod.load(DEMO, [override]).run.name == "padded"
        return
    with pytest.raises(ConfigError) as err:
        config_mod.load(DEMO, [override])
    assert str(err.value).startswith(message)


def test_boundaries_that_are_allowed():
    cfg = config_mod.load(DEMO, ["model.dropout=0", "lm.heldout_frac=0.5", "data.max_rows=30", "train.folds=[2, 0]",
                                 "run.device=cuda:1", "train.layer_decay=1.0", "submit.name=my-sub.v2"])
    assert cfg.train.folds == [2, 0] and cfg.submit.name == "my-sub.v2"


def test_a_config_file_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[run]\nseed = 1\nname = \"caf\xe9\"\n")
    with pytest.raises(ConfigError) as err:
        config_mod.load(path)
    assert str(err.value) == f"{path}: line 3: not UTF-8 text (byte 0xe9); save the file as UTF-8"


@pytest.mark.parametrize("before, after, changed", [
    # a key the run's kind never reads may change: the run computes the same thing
    ({"model.kind": "tfidf"}, {"model.kind": "tfidf", "lm.epochs": 3, "train.epochs": 5, "train.lr": 1e-3}, []),
    ({"model.kind": "tfidf"}, {"model.kind": "tfidf", "model.name": "bert-base-uncased"}, []),
    ({"model.kind": "features"}, {"model.kind": "features", "train.epochs": 5, "train.lr": 1e-3}, []),
    ({"lm.epochs": 0}, {"lm.epochs": 0, "lm.lr": 3e-4}, []),
    # ... but never a key one side reads
    ({"model.kind": "tfidf"}, {"model.kind": "tfidf", "train.C": 1.0}, ["train.C"]),
    ({"model.kind": "features"}, {"model.kind": "features", "model.pooling": "cls"}, ["model.pooling"]),
    ({"model.kind": "features", "lm.epochs": 1}, {"model.kind": "features", "lm.epochs": 1, "lm.lr": 3e-4}, ["lm.lr"]),
    ({"lm.epochs": 1}, {"lm.epochs": 0}, ["lm.epochs"]),
    ({"lm.epochs": 1, "lm.lr": 1e-4}, {"lm.epochs": 0, "lm.lr": 3e-4}, ["lm.epochs", "lm.lr"]),
    ({"model.kind": "tfidf"}, {"model.kind": "transformer"}, ["model.kind"]),
    ({}, {"train.lr": 1e-3, "run.device": "cpu"}, ["train.lr"]),
])
def test_a_run_is_refused_only_over_keys_it_reads(before, after, changed):
    from kagglebert.core.binding import changed_settings

    def build(values):
        cfg = Config()
        for key, value in values.items():
            config_mod.set_key(cfg, key, value)
        return cfg

    assert changed_settings(build(before), build(after)) == changed
