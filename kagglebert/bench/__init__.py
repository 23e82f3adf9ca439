"""Throughput benchmark: kagglebert's training loops against transformers' `Trainer`, in one process,
on the same token ids, model shapes, batch size and max length.

    python -m kagglebert.bench --quick --json bench-quick.json      # tiny BERT, CPU, about 3 minutes
    python -m kagglebert.bench --gpu --json bench-gpu.json          # BERT-base shapes, bf16/fp16
    python -m kagglebert.bench --gpu --tiny                         # the GPU profile end to end, tiny sizes

Fair by construction: every classifier contender warms up on the same separate rows, then makes one
full pass over one shared timed row set (each orders and batches those rows its own way — random,
length-grouped, bucketed — which is what is being compared), at the same batch size; every
masked-LM contender does the same over one shared set of packed blocks. So samples, real tokens
and the work per sample are identical across contenders, and throughput ratios compare like with
like (an 8-step window drawn from a larger pool did not: each contender's window had a different
mix of lengths).

Contenders (classifier: 6 sigmoid labels, BCE): kagglebert's `engine.train_epoch` with
`LengthBucketBatchSampler` + `PadCollator` + `modeling.Classifier`; `Trainer` padded to max length
(the tutorial way); `Trainer` with `DataCollatorWithPadding` and group-by-length sampling. Masked LM
on packed blocks: kagglebert's `MaskingCollator` + `pack_blocks` + `masked_lm_loss` through
`train_epoch`; `Trainer` with `BertForMaskedLM` + `DataCollatorForLanguageModeling` (run_mlm.py's
default). All use a constant learning rate (the schedule costs nothing and the warm-up pass must
not leave the timed pass at lr 0). Also: `tokenization.tokenize` cold vs cached, and sorted no-grad
inference (`modeling.predict`) over the timed rows.

Timing: every contender is warmed up first, then `repeats` rounds of one timed pass each, taken
round-robin across contenders (so load from other processes falls on all alike); the fastest pass
is reported, every pass's seconds are in the JSON. On a CPU run each pass's CPU time is recorded
too (`time.process_time`), and the ratios are also given per CPU-second: on a shared machine
wall-time ratios swing with other processes' load, CPU-time ratios barely move. Peak memory, per timed pass (the largest over
the passes), above what was allocated when the pass started (model, optimizer state): on CUDA
`torch.cuda.max_memory_allocated` minus `memory_allocated` at the start; on the CPU the peak
resident set size (RSS, sampled every 20 ms by a thread via psutil) minus the RSS at the start.

Modules, one concern each:

    profiles.py     what a run measures: model shape, max length, batch sizes, warm-up and timed batches
    workload.py     the rows and packed blocks timed: bundled sample or synthetic competition lengths
    harness.py      the clock's record, padding tally, peak memory, the round-robin race
    contenders.py   kagglebert's loops and transformers' Trainer, and the classifier / masked-LM races
    suite.py        one run as a report: races per batch size, tokenization and inference timings
    tables.py       the report as the printed Markdown table
    cli.py          the command line (`__main__.py` runs it)
"""
