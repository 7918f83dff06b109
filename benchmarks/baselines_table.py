"""Baselines next to SupSup and ExSSNeT at an equal epoch budget: avg accuracy and forgetting, mean +- std.

Every method trains EPOCHS epochs per task: a dense baseline `baseline_epochs = EPOCHS`; SupSup (mask
phase only) `mask_epochs = EPOCHS`; ExSSNeT `mask_epochs = weight_epochs = EPOCHS / 2`. Everything else
is the RunConfig default (LeNet, batch 128, baseline_lr 1e-3, density 0.1). Runs go one at a time, in
seed order (all methods of seed 0 first), each into OUT/<benchmark>/<method>/seed<k>/results.json;
finished runs are skipped, so the script can be stopped and started again.

    PYTHONPATH=src python benchmarks/baselines_table.py [--benchmarks split-mnist split-fashion-mnist]
        [--seeds 0 1 2] [--epochs 2] [--threads 1] [--out runs/baselines] [--methods M ...] [--table-only] [--check docs/baselines.md]

It prints the mean table and the per-seed table; `--check DOC` exits 1 and names every row of the two
tables that DOC states differently (figures that drifted from what the code now gives).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from table_format import mean_std

from exssnet.methods import method_names, method_settings_class
from exssnet.methods.base import method_text_inputs
from exssnet.methods.baselines.dense import BaselineSettings
from exssnet.run.config import RunConfig
from exssnet.run.runner import run_experiment

# SupSup, ExSSNeT, then every registered dense baseline (the methods that read BaselineSettings)
METHODS = ("supsup", "exssnet",
           *(m for m in method_names() if issubclass(method_settings_class(m), BaselineSettings) and method_text_inputs(m) == "features"))


def method_settings(method: str, epochs: int) -> dict:
    """The epoch settings that give `method` `epochs` training epochs per task."""
    if method == "supsup":
        return {"mask_epochs": epochs, "weight_epochs": 0}
    if method in ("exssnet", "ssnet"):
        if epochs % 2:
            raise SystemExit("--epochs must be even: supermask methods split it into mask + weight phases")
        return {"mask_epochs": epochs // 2, "weight_epochs": epochs // 2}
    return {"baseline_epochs": epochs}


def run_grid(benchmarks: list[str], seeds: list[int], epochs: int, threads: int, out: Path, methods: list[str]) -> None:
    for seed in seeds:
        for benchmark in benchmarks:
            for method in methods:
                folder = out / benchmark / method / f"seed{seed}"
                if (folder / "results.json").exists():
                    continue
                config = RunConfig.from_dict(dict(benchmark=benchmark, method=method, seed=seed, threads=threads,
                                                  log_csv=False, **method_settings(method, epochs)))
                results = run_experiment(config, out=folder, progress=False, checkpoints=False)
                print(f"{benchmark} {method} seed {seed}: avg acc {results['avg_acc']:.2f}, "
                      f"forgetting {results['forgetting']:.2f} ({results['total_time_s']:.0f}s)", flush=True)


def table(benchmarks: list[str], out: Path, methods: list[str]) -> str:
    """A markdown table: one row per method, avg acc and forgetting per benchmark, with the seed count."""
    header = "| method | " + " | ".join(f"{b} avg acc | {b} forgetting" for b in benchmarks) + " | seeds |"
    lines = [header, "|" + "---|" * (2 * len(benchmarks) + 2)]
    for method in methods:
        cells, seeds = [], set()
        for benchmark in benchmarks:
            runs = [json.loads(p.read_text()) for p in sorted((out / benchmark / method).glob("seed*/results.json"))]
            seeds.add(len(runs))
            cells += [mean_std([r["avg_acc"] for r in runs]), mean_std([r["forgetting"] for r in runs])]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {'/'.join(str(s) for s in sorted(seeds))} |")
    return "\n".join(lines)


def per_seed_table(benchmarks: list[str], out: Path, methods: list[str]) -> str:
    """A markdown table: one row per method, `avg acc / forgetting` of every seed per benchmark."""
    lines = ["| method | " + " | ".join(PRETTY.get(b, b) for b in benchmarks) + " |", "|" + "---|" * (len(benchmarks) + 1)]
    for method in methods:
        cells = []
        for benchmark in benchmarks:
            runs = [json.loads(p.read_text()) for p in sorted((out / benchmark / method).glob("seed*/results.json"))]
            cells.append(", ".join(f"{r['avg_acc']:.2f} / {r['forgetting']:.2f}" for r in runs) or "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PRETTY = {"split-mnist": "SplitMNIST", "split-fashion-mnist": "SplitFashionMNIST"}


def drifted_rows(tables: str, doc: Path) -> list[str]:
    """Rows of `tables` whose method row in `doc` (same header) states other figures."""
    stated = doc.read_text().splitlines()
    drift = []
    for block in tables.split("\n\n"):
        rows = block.splitlines()
        header = rows[0]
        if header not in stated:
            drift.append(f"table header not found in {doc}: {header}")
            continue
        start = stated.index(header)
        body = []
        for line in stated[start + 2:]:
            if not line.startswith("|"):
                break  # the end of this table
            body.append(line)
        doc_rows = {line.split("|")[1].strip(): line for line in body}
        for row in rows[2:]:
            method = row.split("|")[1].strip()
            if doc_rows.get(method) != row:
                drift.append(f"{doc}: {doc_rows.get(method, '(missing) ' + method)}\n   now: {row}")
    return drift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", nargs="+", default=["split-mnist", "split-fashion-mnist"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per task for every method")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/baselines"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--table-only", action="store_true", help="print the table of the finished runs only")
    parser.add_argument("--check", type=Path, help="exit 1 if this markdown file states other figures (drift)")
    args = parser.parse_args()
    if not args.table_only:
        run_grid(args.benchmarks, args.seeds, args.epochs, args.threads, args.out, args.methods)
    tables = table(args.benchmarks, args.out, args.methods) + "\n\n" + per_seed_table(args.benchmarks, args.out, args.methods)
    print(tables)
    if args.check is not None:
        drift = drifted_rows(tables, args.check)
        for line in drift:
            print(f"drift: {line}")
        if drift:
            raise SystemExit(1)
        print(f"{args.check}: every row matches")


if __name__ == "__main__":
    main()
