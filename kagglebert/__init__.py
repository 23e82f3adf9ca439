"""kagglebert: a BERT-family model through a Kaggle text competition — EDA, corpus masked-LM
fine-tuning (ITPT), k-fold classifier training with out-of-fold predictions, and a validated
submission. Each stage is a module with `main(cfg)`; `python -m kagglebert` drives them."""
from .core.config import Config, load as load_config

__all__ = ["Config", "load_config"]
__version__ = "0.1.0"
