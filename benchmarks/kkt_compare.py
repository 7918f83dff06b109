"""Compare runs with and without KKT: average accuracy, first-mask-epoch validation accuracy, KKT time share.

    PYTHONPATH=src python benchmarks/kkt_compare.py --benchmarks split-mnist split-fashion-mnist \
        --densities 0.1 0.05 --seeds 0 1 2 --methods supsup exssnet --mask-epochs 1 --weight-epochs 1 \
        --log runs/kkt_compare.jsonl

Runs one experiment at a time in this process (threads 1 by default). Every finished run is appended
to --log as one JSON line, and runs already in the log are skipped, so the grid can be stopped and
continued; `--table-only` prints the table of the log. Variants: `off` (no KKT), `scores` (KKT cloning
float scores) and `mask` (KKT with --no-keep-scores: scores rebuilt from binary masks).
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

VARIANTS = {"off": {"kkt": False}, "scores": {"kkt": True, "keep_scores": True}, "mask": {"kkt": True, "keep_scores": False},
            "fresh-head": {"kkt": True, "keep_scores": True, "kkt_head": "fresh"}}


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
    args = parser.parse_args(argv)
    done = read_log(args.log)
    if not args.table_only:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        grid = itertools.product(args.densities, args.benchmarks, args.seeds, args.methods, args.variants)
        for density, bench, seed, method, variant in grid:
            key = run_key(bench, density, method, variant, seed)
            if key in done:
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
    print(table(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
