"""Settings WSN's Table 1 leaves open, compared on VALIDATION: a wsn-t1-pmnist-* preset with its open settings
(optimiser, rate) set, each run measured with `eval_split: val` (the accuracy matrix on each task's held-out
validation examples; the test split is never read). The score is the final row's mean, the same metric as the
table's, on validation.

FINETUNE (naive) is the row furthest from WSN's (docs/wsn.md) and WSN publishes no script for it: its optimiser and
rate are the open settings. Each finished run appends one JSON line to OUT (default
benchmarks/results/wsn_val_study.jsonl); a (variant, seed) already there is skipped.

    PYTHONPATH=src python benchmarks/wsn_val_study.py [--seeds 0] [--variants NAME ...]
    PYTHONPATH=src python benchmarks/wsn_val_study.py --table [--docs docs/wsn.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from table_format import mean_std, read_jsonl, replace_block
from wsn_pmnist import CONFIGS, PREFIX, RESULTS

from exssnet.run.config import RunConfig, load_yaml
from exssnet.run.runner import run_experiment

OUT = RESULTS.with_name("wsn_val_study.jsonl")


def sgd(lr: float) -> dict:
    return {"baseline_optimizer": "sgd", "baseline_lr": lr}


def adam(lr: float) -> dict:
    return {"baseline_optimizer": "adam", "baseline_lr": lr}


# label -> (preset, the settings it runs with on top of the preset). Every variant names all the settings it
# varies, so a row keeps its meaning when the preset changes; rows are found by (preset, settings, seed).
VARIANTS: dict[str, tuple[str, dict]] = {
    "naive: SGD 0.1": ("naive", sgd(0.1)),
    "naive: SGD 0.03 (EWC's)": ("naive", sgd(0.03)),
    "naive: SGD 0.01 (the preset: GPM's)": ("naive", sgd(0.01)),
    "naive: SGD 0.003": ("naive", sgd(0.003)),
    "naive: SGD 0.001": ("naive", sgd(0.001)),
    "naive: Adam 0.001 (WSN's other rows)": ("naive", adam(0.001)),
    "naive: Adam 0.0001": ("naive", adam(0.0001)),
}


def key(preset: str, settings: dict) -> tuple[str, str]:
    """What a row ran, whatever its label: the preset and the settings on top of it."""
    return preset, json.dumps(settings, sort_keys=True)


def run_variant(variant: str, seed: int, out: Path) -> dict:
    preset, settings = VARIANTS[variant]
    values = {**load_yaml(CONFIGS / f"{PREFIX}{preset}.yaml"), **settings, "seed": seed, "threads": 1,
              "log_csv": False, "eval_split": "val"}
    folder = out / preset / "_".join(f"{k}-{v}" for k, v in sorted(settings.items())) / f"seed{seed}"
    results = run_experiment(RunConfig.from_dict(values), out=folder, progress=False, checkpoints=False, overwrite=True)
    return {"variant": variant, "preset": preset, "settings": settings, "seed": seed, "val_avg_acc": results["avg_acc"],
            "val_forgetting": results["forgetting"], "val_final_row": results["acc_matrix"][-1],
            "seconds": results["total_time_s"]}


def table(rows: list[dict]) -> str:
    lines = ["| variant | validation avg acc (final row) | validation forgetting | seeds |", "|---|---|---|---|"]
    for variant, (preset, settings) in VARIANTS.items():
        runs = [r for r in rows if key(r["preset"], r["settings"]) == key(preset, settings)]
        if runs:
            lines.append(f"| {variant} | {mean_std([r['val_avg_acc'] for r in runs], bare_single=True)} | "
                         f"{mean_std([r['val_forgetting'] for r in runs], bare_single=True)} | {len(runs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--runs", type=Path, default=Path("runs/wsn-val-study"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--table", action="store_true", help="print the table from OUT and stop")
    parser.add_argument("--docs", type=Path, help="with --table: rewrite the wsn_val_study block of this markdown file")
    args = parser.parse_args()
    if not args.table:
        for seed in args.seeds:
            for variant in args.variants:
                done = {(key(r["preset"], r["settings"]), r["seed"]) for r in read_jsonl(args.out)}  # reread: runs are long
                if (key(*VARIANTS[variant]), seed) in done:
                    continue
                row = run_variant(variant, seed, args.runs)
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(f"{variant} seed {seed}: validation {row['val_avg_acc']:.2f} ({row['seconds']:.0f}s)", flush=True)
    text = table(read_jsonl(args.out))
    if args.docs:
        replace_block(args.docs, "wsn_val_study", text + "\n")
    print(text)


if __name__ == "__main__":
    main()
