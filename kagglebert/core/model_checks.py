"""The model folder (or hub id) checked before anything is written: config.json, weights, a
tokenizer whose vocabulary fits the embedding matrix (a folder without tokenizer files once trained
on a 5-token vocabulary, every word `[UNK]`), `model.max_length` / `lm.block_size` within the
model's position embeddings, and whole-word masking only with a tokenizer that marks words.
Memoised per process by the folder's file sizes and modification times."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .errors import ConfigError
from .fingerprints import folder_fingerprints
from .paths import resolve_model

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
# position ids of these architectures start after the padding index: usable length = max - pad - 1
OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xlm-roberta-xl"}
MIN_TOKENIZER_SHARE = 0.5  # a tokenizer covering less than half the embedding rows is not the model's


@dataclass
class ModelCheck:
    name: str  # model.name as configured
    path: str  # the folder (or hub id) the stages load
    vocab_size: int
    max_positions: int | None  # usable sequence length; None when the architecture has no limit
    files: dict[str, str] = field(default_factory=dict)  # file name → sha256 (a hub id: the config's hash)
    word_marker: str | None = None  # how its tokenizer marks words (batching.word_marker): whole-word masking needs one


def usable_positions(model_config) -> int | None:
    limit = getattr(model_config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(model_config, "model_type", "") in OFFSET_POSITION_TYPES:
        limit -= (getattr(model_config, "pad_token_id", None) or 1) + 1
    return limit


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[-1].strip() if text else type(err).__name__


def _embedding_rows(folder: Path) -> int | None:
    """Rows of the word-embedding matrix as stored in model.safetensors (read from the header only);
    a corrupt weights file is an error here rather than at the first fold."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            for key in handle.keys():
                if key.endswith("word_embeddings.weight"):
                    return int(handle.get_slice(key).get_shape()[0])
    except Exception as err:  # safetensors raises its own error types for a damaged header
        raise ConfigError(f"{weights}: not a readable safetensors file ({_one_line(err)})") from None
    return None


def _check_tokenizer_fits(label: str, tokenizer, vocab_size: int) -> None:
    size = len(tokenizer)
    if size > vocab_size:
        raise ConfigError(
            f"{label}: the tokenizer has {size} tokens but the model's embedding matrix has {vocab_size} rows; "
            f"the tokenizer files do not belong to these weights"
        )
    if size < MIN_TOKENIZER_SHARE * vocab_size:
        raise ConfigError(
            f"{label}: the tokenizer has only {size} tokens for an embedding matrix of {vocab_size} rows "
            f"(every other word would become [UNK]); copy the tokenizer that belongs to these weights into the folder"
        )


def check_model_folder(name: str, folder: Path) -> ModelCheck:
    from transformers import AutoConfig

    from .tokenization import load_tokenizer, quiet_transformers

    label = f"model.name = {name!r} ({folder})" if str(folder) != name else f"model.name = {name!r}"
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if not present:
        raise ConfigError(f"{label}: the folder is empty; it needs config.json, the weights ({WEIGHT_FILES[0]} or {WEIGHT_FILES[2]}) and the tokenizer files")
    if "config.json" not in present:
        raise ConfigError(f"{label}: no config.json in the folder (is it a Hugging Face checkpoint folder?)")
    if not present & set(WEIGHT_FILES):
        raise ConfigError(f"{label}: no weights in the folder ({' or '.join(WEIGHT_FILES[::2])})")
    if not present & set(TOKENIZER_FILES):
        raise ConfigError(
            f"{label}: no tokenizer files in the folder ({', '.join(TOKENIZER_FILES[:2])}, …); "
            f"save the matching tokenizer there (tokenizer.save_pretrained(folder))"
        )
    quiet_transformers()
    try:
        model_config = AutoConfig.from_pretrained(str(folder))
    except Exception as err:  # transformers raises OSError, ValueError, JSONDecodeError, KeyError … for a bad config
        raise ConfigError(f"{folder / 'config.json'}: cannot be loaded: {_one_line(err)}") from None
    try:
        tokenizer = load_tokenizer(str(folder))
    except Exception as err:
        raise ConfigError(f"{label}: the tokenizer cannot be loaded: {_one_line(err)}") from None
    vocab_size = _embedding_rows(folder) or getattr(model_config, "vocab_size", None)
    if not isinstance(vocab_size, int):
        raise ConfigError(f"{folder / 'config.json'}: no vocab_size")
    _check_tokenizer_fits(label, tokenizer, vocab_size)
    from .batching import word_marker

    return ModelCheck(name, str(folder), vocab_size, usable_positions(model_config), folder_fingerprints(folder), word_marker(tokenizer))


def looks_like_a_path(name: str) -> bool:
    """A hub id is `name` or `org/name`; anything else (absolute, ~, ./, two slashes) is a folder."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def check_hub_model(name: str) -> ModelCheck:
    """A hub id that is not a local folder: the cached snapshot when there is one (checked like a
    folder), else config and tokenizer as transformers can load them (from the cache or, online,
    the hub; the weights come when a stage loads them)."""
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(name, local_files_only=True))
        if (cached / "config.json").is_file() and {p.name for p in cached.iterdir()} & set(WEIGHT_FILES):
            check = check_model_folder(name, cached)
            check.path = name  # stages load it by id, as configured
            return check
    except ConfigError:
        raise
    except Exception:  # not (fully) in the cache: fall through to what transformers can fetch
        pass
    from transformers import AutoConfig

    from .tokenization import load_tokenizer, quiet_transformers

    quiet_transformers()
    try:
        model_config = AutoConfig.from_pretrained(name)
        tokenizer = load_tokenizer(name)
    except Exception as err:
        raise ConfigError(
            f"model.name = {name!r}: not a local folder, and no Hugging Face model of that name could be loaded "
            f"from the cache or the hub ({_one_line(err)}); give a checkpoint folder or a hub id you can download"
        ) from None
    _check_tokenizer_fits(f"model.name = {name!r}", tokenizer, model_config.vocab_size)
    digest = hashlib.sha256(model_config.to_json_string().encode()).hexdigest()
    from .batching import word_marker

    return ModelCheck(name, name, model_config.vocab_size, usable_positions(model_config), {"config (hub)": digest}, word_marker(tokenizer))


_models: dict[tuple, ModelCheck] = {}


def check_model(cfg: Config) -> ModelCheck:
    name = cfg.model.name
    if not name.strip():
        raise ConfigError("model.name is empty; give packaged-minilm, a hub id or a checkpoint folder")
    resolved = resolve_model(name)  # packaged-minilm → its folder; an existing path → expanded
    folder = Path(resolved)
    if folder.exists():
        if not folder.is_dir():
            raise ConfigError(f"model.name = {name!r}: {folder} is a file; give the checkpoint's folder")
        key = ("folder", str(folder.resolve()), tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())))
    elif looks_like_a_path(name):
        raise ConfigError(f"model.name = {name!r}: no such folder")
    else:
        key = ("hub", name)
    if key not in _models:
        _models[key] = check_model_folder(name, folder) if key[0] == "folder" else check_hub_model(name)
    check = _models[key]
    if check.max_positions is not None:
        if cfg.model.max_length > check.max_positions:
            raise ConfigError(f"config: model.max_length = {cfg.model.max_length}; {name} has {check.max_positions} position embeddings: use at most {check.max_positions}")
        if cfg.lm.epochs > 0 and cfg.lm.block_size > check.max_positions:
            raise ConfigError(f"config: lm.block_size = {cfg.lm.block_size}; {name} has {check.max_positions} position embeddings: use at most {check.max_positions}")
    if cfg.lm.epochs > 0 and cfg.lm.whole_word_mask and check.word_marker is None:
        raise ConfigError(f"config: lm.whole_word_mask = true; the tokenizer of {name} marks no words in a way kagglebert reads "
                          f"(WordPiece '##', byte-level BPE '\u0120', SentencePiece '\u2581'): set lm.whole_word_mask = false")
    return check
