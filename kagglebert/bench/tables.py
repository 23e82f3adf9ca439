"""The report as the Markdown table `python -m kagglebert.bench` prints (BENCHMARKS.md's tables are
this output), with the timed sets, tokenization, inference and the headline ratios below it."""
from __future__ import annotations


def table(report: dict) -> str:
    profile = report["profile"]
    lines = [f"{report['device']} · {report['precision']} · profile {profile['name']} · "
             f"warm-up {profile['warmup_batches']} batches on rows of their own, then the fastest of {profile['repeats']} round-robin passes over the shared timed set · "
             f"peak memory: {report['peak_memory']}",
             "| contender | task | batch | samples/s | real tokens/s | padding | peak MiB | × Trainer | CPU s | × Trainer, CPU time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        cpu = "–" if r["cpu_seconds"] is None else f"{r['cpu_seconds']:.2f}"
        cpu_ratio = "–" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}"
        lines.append(f"| {r['contender']} | {r['task']} | {r['batch_size']} | {r['samples_per_s']:,.1f} | {r['tokens_per_s']:,.0f} | "
                     f"{r['padding_fraction']:.0%} | {r['peak_mib']:,.0f} | {r['ratio']:.2f} | {cpu} | {cpu_ratio} |")
    for key, shared in report["timed_sets"].items():
        lines.append(f"timed set {key}: " + ", ".join(f"{k} {v:g}" for k, v in shared.items()))
    t, i = report["tokenization"], report["inference"]
    lines.append(f"tokenize {t['texts']} texts: cold {t['cold_s']:.2f} s, cached {t['cached_s'] * 1000:.0f} ms → {t['tokenize_cache_speedup']:.0f}×")
    lines.append(f"inference (modeling.predict, sorted, no grad, batch {i['batch_size']}): {i['comments_per_s']:,.0f} comments/s")
    lines.append(f"cls_ratio_vs_trainer_padded {report['cls_ratio_vs_trainer_padded']:.2f} · "
                 f"lm_ratio_vs_trainer_packed {report['lm_ratio_vs_trainer_packed']:.2f} · "
                 f"tokenize_cache_speedup {report['tokenize_cache_speedup']:.0f}")
    if report["cls_cpu_ratio_vs_trainer_padded"] is not None:
        lines.append(f"per CPU-second: cls_cpu_ratio_vs_trainer_padded {report['cls_cpu_ratio_vs_trainer_padded']:.2f} · "
                     f"lm_cpu_ratio_vs_trainer_packed {report['lm_cpu_ratio_vs_trainer_packed']:.2f}")
    return "\n".join(lines)
