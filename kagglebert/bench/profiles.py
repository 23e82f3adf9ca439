"""What a benchmark run measures: model shape, max length, batch sizes, how many batches warm up and
how many are timed, precision, and whether the rows are the bundled sample's or synthetic."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.tasks import JIGSAW_TOXIC_2018

N_LABELS = len(JIGSAW_TOXIC_2018.label_columns)


@dataclass(frozen=True)
class Profile:
    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_length: int  # one for all contenders: the padded Trainer's width, the cut, the LM block size
    batch_sizes: tuple[int, ...]
    warmup_batches: int  # on rows (blocks) of their own, never timed
    timed_batches: int  # classifier: the shared timed row set is this many batches' worth of rows
    lm_timed_batches: int  # masked LM: the shared timed block set, in batches
    precision: str  # fp32 | auto (bf16 where supported, else fp16)
    synthetic: bool  # synthetic token ids with the competition's length distribution
    tokenize_rows: int  # bundled train rows for the tokenization timing
    repeats: int = 2  # timed passes per contender, round-robin across contenders; the fastest is reported
    lr: float = 5e-5


# max length 256 for every contender, like the --gpu profile: the padded-to-256 Trainer is the
# common fine-tuning tutorials' baseline, and the comments' long tail is what padding to max length
# pays for; a few hundred bundled rows
QUICK = Profile("quick", hidden=128, layers=2, heads=4, intermediate=512, max_length=256, batch_sizes=(32,),
                warmup_batches=2, timed_batches=8, lm_timed_batches=3, precision="fp32", synthetic=False,
                tokenize_rows=6400)
GPU = Profile("gpu", hidden=768, layers=12, heads=12, intermediate=3072, max_length=256, batch_sizes=(32, 128),
              warmup_batches=20, timed_batches=120, lm_timed_batches=120, precision="auto", synthetic=True,
              tokenize_rows=12000)
# the GPU profile's code path at a size a CPU runs in about a minute (a dry run, not a measurement)
TINY = dict(hidden=64, layers=2, heads=2, intermediate=128, batch_sizes=(8, 16), warmup_batches=1, timed_batches=3,
            lm_timed_batches=3, tokenize_rows=1000, repeats=1)
