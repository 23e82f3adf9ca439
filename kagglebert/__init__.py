"""kagglebert: a BERT-family model through a Kaggle text competition — EDA, corpus masked-LM
fine-tuning (ITPT), k-fold classifier training with out-of-fold predictions, and a validated
submission. Each stage is a module with `main(cfg)`; `python -m kagglebert` drives them.

A finished run scores new texts from Python:

    import kagglebert
    model = kagglebert.load_run("demo")                  # every fold model of runs/demo/ (or a blend)
    model.predict(["thanks for fixing the citation"])    # DataFrame: per-label probabilities
"""
from .core.config import Config, load as load_config
from .core.paths import kagglebert_version

__all__ = ["Config", "load_config", "load_run"]
__version__ = kagglebert_version()


def load_run(run, runs_dir="runs", *, device="auto", batch_size=0):
    """A finished run (transformer, tfidf or features) or blend, ready to `.predict([...])` (also
    `.labels`, `.config`, `.describe()`, `.fold_table()`). `run`: a name under `runs_dir` or the
    path of a run or blend folder (an export, an attached Kaggle dataset). See
    `kagglebert.stages.serving`."""
    # imported here, not at the top: `import kagglebert` stays free of torch (serving needs it);
    # the import points downwards, so it hides no cycle
    from .stages.serving import load_run as load_fold_models

    return load_fold_models(run, runs_dir, device=device, batch_size=batch_size)
