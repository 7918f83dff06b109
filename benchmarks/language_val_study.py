"""Why does ExSSNeT not beat dense ER on the offline text stream? Its settings, compared on VALIDATION only.

Issue #26 asks, if ExSSNeT does not win the Table 1 analogue (benchmarks/language_full.py), to look at density,
epochs and learning rates chosen on validation, never on the test split. Every run here is the language_full
ExSSNeT row (text-offline, 200 / 100 examples per class, max length 128, 2 mask + 2 weight epochs, Kim CNN over
frozen encoder features) with one setting changed; its score is the mean over tasks of the validation accuracy
at the end of the task (ExSSNeT forgets nothing, so this is also its final validation accuracy). ER's row is
scored the same way (at the end of each task; it may forget a little afterwards) as the reference.
Each finished run appends one JSON line to OUT (default benchmarks/results/language_val_study.jsonl) and a
(variant, encoder, seed) already there is skipped.

    PYTHONPATH=src python benchmarks/language_val_study.py [--seeds 0] [--encoder minilm]
    PYTHONPATH=src python benchmarks/language_val_study.py --table
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from language_full import CONFIG, EPOCHS, MAX_LENGTH, PER_CLASS, run_exssnet, run_folder
from table_format import read_jsonl

# variant -> flags on top of CONFIG (density 0.1, mask / weight lr 1e-3, 2 + 2 epochs)
VARIANTS: dict[str, list[str]] = {
    "exssnet (as in the table)": ["--method", "exssnet"],
    "exssnet density 0.05": ["--method", "exssnet", "--density", "0.05"],
    "exssnet density 0.2": ["--method", "exssnet", "--density", "0.2"],
    "exssnet density 0.4": ["--method", "exssnet", "--density", "0.4"],
    "exssnet density 0.7": ["--method", "exssnet", "--density", "0.7"],
    "exssnet lr 1e-2": ["--method", "exssnet", "--mask-lr", "0.01", "--weight-lr", "0.01"],
    "exssnet lr 1e-4": ["--method", "exssnet", "--mask-lr", "0.0001", "--weight-lr", "0.0001"],
    "exssnet 1 mask + 3 weight epochs": ["--method", "exssnet", "--mask-epochs", "1", "--weight-epochs", "3"],
    "exssnet 3 mask + 1 weight epochs": ["--method", "exssnet", "--mask-epochs", "3", "--weight-epochs", "1"],
    "er (reference)": ["--method", "er", "--baseline-epochs", str(EPOCHS), "--replay-batch-size", "8"],
}


def command(variant: str, encoder: str, seed: int, out: Path) -> list[str]:
    return ["exssnet", "run", "--config", CONFIG, *VARIANTS[variant], "--encoder", encoder, "--seed", str(seed),
            "--max-length", str(MAX_LENGTH), "--text-max-train", str(PER_CLASS[0]), "--text-max-test", str(PER_CLASS[1]),
            "--threads", "1", "--no-checkpoints", "--no-log-csv", "--quiet", "--overwrite", "--out", str(out)]


def end_of_task_validation(results: dict) -> list[float]:
    """Each task's validation accuracy at the end of its last training phase."""
    scores = []
    for task in results["tasks"]:
        phases = [task[k] for k in ("weight_phase", "mask_phase", "train_phase") if task.get(k) and task[k].get("val_acc")]
        scores.append(phases[0]["val_acc"][-1])
    return scores


def run(args: argparse.Namespace) -> None:
    done = {(r["variant"], r["encoder"], r["seed"]) for r in read_jsonl(args.out)}
    for seed in args.seeds:
        for variant in VARIANTS:
            if (variant, args.encoder, seed) in done:
                continue
            folder = run_folder(Path("runs/language_val_study"), args.encoder, variant, seed)
            argv = command(variant, args.encoder, seed, folder)
            results, wall, error = run_exssnet(argv, folder)
            if results is None:
                print(f"{variant} seed {seed}: FAILED: {error}", flush=True)
                continue
            val = end_of_task_validation(results)
            row = {"variant": variant, "encoder": args.encoder, "seed": seed, "val_acc": statistics.mean(val),
                   "val_per_task": val, "wall_s": round(wall, 1), "command": " ".join(argv)}
            with open(args.out, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"{variant} seed {seed}: validation {row['val_acc']:.2f} ({wall:.0f}s)", flush=True)


def table(rows: list[dict]) -> str:
    lines = ["| variant | encoder | mean validation accuracy (end of each task) | seeds |", "|---|---|---|---|"]
    for encoder in sorted({r["encoder"] for r in rows}):
        for variant in VARIANTS:
            runs = [r for r in rows if r["variant"] == variant and r["encoder"] == encoder]
            if runs:
                accs = [r["val_acc"] for r in runs]
                lines.append(f"| {variant} | {encoder} | {statistics.mean(accs):.2f} | {len(runs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results/language_val_study.jsonl")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--table", action="store_true", help="print the table from OUT and stop")
    args = parser.parse_args()
    if not args.table:
        run(args)
    print(table(read_jsonl(args.out)))


if __name__ == "__main__":
    main()
