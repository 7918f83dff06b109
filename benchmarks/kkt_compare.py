"""Compare runs with and without KKT: average accuracy, first-mask-epoch validation accuracy, KKT time share.

    PYTHONPATH=src python benchmarks/kkt_compare.py --benchmarks split-mnist split-fashion-mnist \
        --densities 0.1 0.05 --seeds 0 1 2 --methods supsup exssnet --mask-epochs 1 --weight-epochs 1 \
        --log runs/kkt_compare.jsonl

Runs one experiment at a time in this process (threads 1 by default). Every finished run is appended
to --log as one JSON line, and runs already in the log are skipped, so the grid can be stopped and
continued; `--table-only` prints the table of the log. Variants: `off` (no KKT), `scores` / `chance` (the
paper's rule, cloning float scores), `mask` (the same with --no-keep-scores: scores rebuilt from binary masks),
`fresh-head` (paper's rule, fresh classifier), `chance-blend` (paper's rule, start 0.5 source + 0.5 fresh) and
the `paired` rule (transfer only when the best earlier task clearly beats a fresh random subnetwork) with the
same three starts: `paired`, `paired-fresh-head`, `paired-blend`.

A KKT run in which no task transferred is bit-identical to `off` (the fallback is the very draw `off` makes),
and every variant of one rule makes the same decisions until its first transfer. So when a run of a rule
transferred nothing, `off` and the other variants of that rule are recorded as copies of it
(`"same_as": "<variant>"`) instead of being run again: list the rule's variant first (`paired off ...`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

from exssnet.run.config import RunConfig
from exssnet.run.runner import run_experiment

# scores kept (keep_scores defaults to False since the packed-mask default); "mask" starts from the binary mask
CHANCE = {"kkt": True, "kkt_rule": "chance", "kkt_head": "copy", "kkt_rescue": False, "keep_scores": True}  # the paper
PAIRED = {"kkt": True, "kkt_rule": "paired", "kkt_head": "copy", "kkt_rescue": False, "keep_scores": True}
# the defaults of --kkt (rule paired, fresh head, rescue on, binary-mask start), and the same without the rescue
DEFAULT = {"kkt": True}
NO_RESCUE = {"kkt": True, "kkt_rescue": False}
VARIANTS = {"off": {"kkt": False}, "default": DEFAULT, "no-rescue": NO_RESCUE, "scores": CHANCE, "chance": CHANCE,
            "mask": {**CHANCE, "keep_scores": False},
            "fresh-head": {**CHANCE, "kkt_head": "fresh"}, "chance-blend": {**CHANCE, "kkt_blend": 0.5},
            "paired": PAIRED, "paired-fresh-head": {**PAIRED, "kkt_head": "fresh"},
            "paired-blend": {**PAIRED, "kkt_blend": 0.5}}


def rule_of(variant: str) -> str | None:
    settings = VARIANTS[variant]
    return settings.get("kkt_rule", "paired") if settings["kkt"] else None


def same_run(variant: str, rows: list[dict]) -> dict | None:
    """A finished row of the same setting that `variant` would repeat bit for bit, if any.

    A row whose run neither transferred nor rescued a task equals `off` and every variant of its own rule.
    """
    without_rescue = lambda v: {k: x for k, x in VARIANTS[v].items() if k != "kkt_rescue"}  # noqa: E731
    for row in rows:
        rescued = any(row.get("rescues") or [])
        if not rescued and without_rescue(row["variant"]) == without_rescue(variant):
            return row  # the rescue setting alone differs and no rescue happened
        if any(source is not None for source in row["sources"]) or rescued or rule_of(row["variant"]) is None:
            continue
        if rule_of(variant) in (None, rule_of(row["variant"])):
            return row
    return None


def run_key(benchmark: str, density: float, method: str, variant: str, seed: int) -> str:
    return f"{benchmark}|{density}|{method}|{variant}|{seed}"


def measure(results: dict) -> dict:
    """The numbers the table needs from one results dict."""
    later = results["tasks"][1:]
    kkt_seconds = sum((task.get("kkt") or {}).get("seconds", 0.0) for task in results["tasks"])
    return {
        "avg_acc": results["avg_acc"],
        "first_epoch_val": statistics.mean(task["mask_phase"]["val_acc"][0] for task in later) if later else None,
        "kkt_share": kkt_seconds / sum(results["task_time_s"]),
        "kkt_seconds_per_task": kkt_seconds / max(1, len(later)),
        "sources": [(task.get("kkt") or {}).get("source") for task in results["tasks"]],
        "rescues": [((task.get("kkt") or {}).get("rescue") or {}).get("kept") for task in results["tasks"]],
        "at_chance": sum(1 for w in results.get("warnings", []) if "chance" in str(w)),
        "fresh_acc": [(task.get("kkt") or {}).get("fresh_acc") for task in results["tasks"]],
        "best_knn_acc": [max((task.get("kkt") or {}).get("knn_acc") or [None]) if (task.get("kkt") or {}).get("knn_acc")
                         else None for task in results["tasks"]],
        "p_values": [(task.get("kkt") or {}).get("p_value") for task in results["tasks"]],
        "sparse_overlap": results.get("sparse_overlap"),
        "total_time_s": results["total_time_s"],
    }


def read_log(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    return {row["key"]: row for row in map(json.loads, path.read_text().splitlines()) if row}


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def paired_delta(runs: list[dict], baseline: dict[int, dict], field: str) -> str:
    """Mean ± std over seeds of (this run - the same seed's run without KKT); '-' without baselines."""
    deltas = [r[field] - baseline[r["seed"]][field] for r in runs if r["seed"] in baseline]
    if not deltas:
        return "-"
    sign = lambda v: f"{v:+.2f}"  # noqa: E731
    return sign(deltas[0]) if len(deltas) == 1 else f"{sign(statistics.mean(deltas))} ± {statistics.stdev(deltas):.2f}"


def table(rows: dict[str, dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for row in rows.values():
        groups.setdefault((row["benchmark"], row["density"], row["method"], row["variant"]), []).append(row)
    lines = ["| benchmark | density | method | KKT | seeds | avg acc | Δ avg acc vs off | val acc after 1st mask epoch "
             "(mean of tasks 1-4) | Δ vs off | KKT share of task time | KKT s/task |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (bench, density, method, variant), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][1], *kv[0][2:])):
        seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        base = {r["seed"]: r for r in groups.get((bench, density, method, "off"), [])}
        off = variant == "off"
        share = "-" if off else f"{100 * statistics.mean(r['kkt_share'] for r in runs):.1f}%"
        per_task = "-" if off else f"{statistics.mean(r['kkt_seconds_per_task'] for r in runs):.2f}"
        acc_delta = "-" if off else paired_delta(runs, base, "avg_acc")
        val_delta = "-" if off else paired_delta(runs, base, "first_epoch_val")
        lines.append(f"| {bench} | {density} | {method} | {variant} | {seeds} | {mean_std([r['avg_acc'] for r in runs])} "
                     f"| {acc_delta} | {mean_std([r['first_epoch_val'] for r in runs])} | {val_delta} | {share} | {per_task} |")
    return "\n".join(lines)


def delta_table(rows: dict[str, dict]) -> str:
    """Per seed: KKT minus no KKT (avg acc and first-mask-epoch val acc), transfers and the overlap they bring."""
    groups: dict[tuple, dict[int, dict]] = {}
    for row in rows.values():
        groups.setdefault((row["benchmark"], row["density"], row["method"], row["variant"]), {})[row["seed"]] = row
    lines = ["| benchmark | density | variant | Δ avg acc per seed | mean Δ | worst seed | Δ 1st-epoch val (mean) "
             "| transfers | rescues (kept) | tasks at chance: KKT / off | overlap of transferring tasks: KKT / off |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = lambda key: (key[0], -key[1], key[2], list(VARIANTS).index(key[3]))  # noqa: E731
    for key in sorted(groups, key=order):
        bench, density, method, variant = key
        off = groups.get((bench, density, method, "off"), {})
        runs = groups[key]
        seeds = sorted(seed for seed in runs if seed in off)
        if variant == "off" or not seeds:
            continue
        acc = [runs[s]["avg_acc"] - off[s]["avg_acc"] for s in seeds]
        val = [runs[s]["first_epoch_val"] - off[s]["first_epoch_val"] for s in seeds]
        moved = sum(source is not None for s in seeds for source in runs[s]["sources"])
        later = sum(len(runs[s]["sources"]) - 1 for s in seeds)
        pairs = [(runs[s]["sparse_overlap"][t], off[s]["sparse_overlap"][t]) for s in seeds
                 for t, source in enumerate(runs[s]["sources"]) if source is not None
                 and runs[s].get("sparse_overlap") and off[s].get("sparse_overlap")]
        overlap = (f"{statistics.mean(p[0] for p in pairs):.2f} / {statistics.mean(p[1] for p in pairs):.2f}"
                   if pairs else "-")
        rescues = [kept for s in seeds for kept in runs[s].get("rescues") or [] if kept]
        rescued = f"{len(rescues)} ({rescues.count('rescue')})" if rescues else "0"
        dead = lambda rows: sum(rows[s].get("at_chance", 0) for s in seeds)  # noqa: E731
        lines.append(f"| {bench} | {density} | {variant} | {' / '.join(f'{d:+.2f}' for d in acc)} "
                     f"| {statistics.mean(acc):+.2f} | {min(acc):+.2f} | {statistics.mean(val):+.2f} "
                     f"| {moved}/{later} | {rescued} | {dead(runs)} / {dead(off)} | {overlap} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", nargs="+", default=["split-mnist", "split-fashion-mnist"])
    parser.add_argument("--densities", nargs="+", type=float, default=[0.1, 0.05])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["supsup", "exssnet"])
    parser.add_argument("--variants", nargs="+", default=["off", "scores"], choices=sorted(VARIANTS))
    parser.add_argument("--mask-epochs", type=int, default=1)
    parser.add_argument("--weight-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log", type=Path, default=Path("runs/kkt_compare.jsonl"))
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--deltas", action="store_true", help="print the per-seed KKT-minus-off table instead")
    args = parser.parse_args(argv)
    done = read_log(args.log)
    if not args.table_only:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        grid = itertools.product(args.densities, args.benchmarks, args.seeds, args.methods, args.variants)
        for density, bench, seed, method, variant in grid:
            key = run_key(bench, density, method, variant, seed)
            if key in done:
                continue
            others = [done[k] for k in (run_key(bench, density, method, v, seed) for v in args.variants) if k in done]
            sibling = same_run(variant, [row for row in others if "same_as" not in row])
            if sibling is not None:
                row = {**sibling, "key": key, "variant": variant, "same_as": sibling["variant"]}
                done[key] = row
                with args.log.open("a") as log:
                    log.write(json.dumps(row) + "\n")
                continue
            config = RunConfig.from_dict(dict(benchmark=bench, method=method, density=density, seed=seed,
                                              threads=args.threads, mask_epochs=args.mask_epochs,
                                              weight_epochs=args.weight_epochs, **VARIANTS[variant]))
            row = {"key": key, "benchmark": bench, "density": density, "method": method, "variant": variant,
                   "seed": seed, "mask_epochs": args.mask_epochs, "weight_epochs": args.weight_epochs,
                   **measure(run_experiment(config, progress=False))}
            done[key] = row
            with args.log.open("a") as log:
                log.write(json.dumps(row) + "\n")
            print(f"{key}: avg {row['avg_acc']:.2f}, 1st-epoch val {row['first_epoch_val']:.2f}, "
                  f"sources {row['sources']}, {row['total_time_s']:.0f}s", file=sys.stderr, flush=True)
    print(delta_table(done) if args.deltas else table(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
