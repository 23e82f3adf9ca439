"""The shared core every stage stands on: config, paths and run folders, task specs, preflight checks,
folds, tokenization, batching, models, the fit routine and data-parallel helpers. Imports nothing
from `stages`, `analysis`, `notebook` or `bench`."""
