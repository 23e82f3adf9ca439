"""The engine's numbers did not move when accelerate took over the device work: the fixed run of
tests/parity_run.py (LM stage, then 2 folds × 2 epochs, fp32 on the CPU) gives the OOF predictions
and LM perplexities that the hand-written engine gave (tests/parity/, written at f596eb8).
The other parities live beside the code they check: 2 gloo processes = 1 process, with and without
accumulation (test_distributed.py); accumulation = the concatenated batch, partial last window
included (test_fastpath_parity.py); killed and resumed = uninterrupted (test_resume.py)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import parity_run

pytestmark = pytest.mark.slow  # two tiny CLI runs: about half a minute of CPU


def test_the_fixed_run_gives_the_reference_oof_and_perplexities(tmp_path):
    oof, lm_metrics = parity_run.run(tmp_path)
    got, reference = pd.read_csv(oof), pd.read_csv(parity_run.REFERENCE / "oof_reference.csv")
    assert list(got["id"]) == list(reference["id"])
    np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(), reference.iloc[:, 1:].to_numpy(), rtol=0, atol=1e-5)
    # the predictions are not all alike: a run that learned nothing would not pass by chance
    assert reference.iloc[:, 1:].to_numpy().std() > 1e-3
    lm, lm_reference = json.loads(lm_metrics.read_text()), json.loads((parity_run.REFERENCE / "lm_reference.json").read_text())
    assert lm["perplexity_after"] == pytest.approx(lm_reference["perplexity_after"], rel=1e-5)
    assert lm["perplexity_after"] != pytest.approx(lm["perplexity_before"], rel=1e-4)  # the LM stage moved the weights
    np.testing.assert_allclose([e["loss_curve"] for e in lm["epochs"]], lm_reference["loss_curve"], rtol=1e-5)
