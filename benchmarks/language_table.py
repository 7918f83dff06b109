"""The language baselines next to SupSup / SSNeT / ExSSNeT on the offline text stream, equal epochs.

Every method trains EPOCHS epochs per task with the same encoder (default MiniLM): a language method
`baseline_epochs = EPOCHS` (it fine-tunes or adapts the encoder on raw text); SupSup `mask_epochs = EPOCHS`
and SSNeT / ExSSNeT `mask_epochs = weight_epochs = EPOCHS / 2` (Kim CNN over the frozen encoder's cached
features). Runs go one at a time into OUT/<method>/seed<k>/results.json; finished runs are skipped.

    PYTHONPATH=src python benchmarks/language_table.py [--methods ...] [--seeds 0 1 2] [--epochs 2]
        [--max-train 20] [--max-test 20] [--max-length 32] [--batch-size 16] [--replay-batch-size 16] [--data-dir data/text] [--lamol-lm FOLDER]
        [--mbpa-steps 2] [--mbpa-test-batch 64] [--threads 1] [--out runs/language] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from exssnet.methods.language import LANGUAGE_METHODS
from exssnet.run.config import RunConfig
from exssnet.run.runner import run_experiment

SUPERMASK = ("supsup", "ssnet", "exssnet")


def method_settings(method: str, epochs: int) -> dict:
    if method == "supsup":
        return {"mask_epochs": epochs, "weight_epochs": 0, "model": "kim-cnn"}
    if method in SUPERMASK:
        if epochs % 2:
            raise SystemExit("--epochs must be even: ssnet and exssnet split it into mask + weight phases")
        return {"mask_epochs": epochs // 2, "weight_epochs": epochs // 2, "model": "kim-cnn"}
    return {"baseline_epochs": epochs}


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=[*SUPERMASK, *LANGUAGE_METHODS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-train", type=int, default=20, help="training examples per class per task")
    parser.add_argument("--max-test", type=int, default=20, help="test examples per class per task")
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--replay-batch-size", type=int, default=16, help="replayed examples per step (replay methods)")
    parser.add_argument("--data-dir", default="data/text")
    parser.add_argument("--lamol-lm", default=None, help="causal LM folder for lamol (skipped without one)")
    parser.add_argument("--mbpa-steps", type=int, default=2)
    parser.add_argument("--mbpa-test-batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/language"))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if not args.table_only:
        for seed in args.seeds:
            for method in args.methods:
                folder = args.out / method / f"seed{seed}"
                if (folder / "results.json").exists() or (method == "lamol" and not args.lamol_lm):
                    continue
                config = RunConfig.from_dict(dict(benchmark="text-offline", method=method, seed=seed, threads=args.threads,
                                   data_dir=args.data_dir, text_max_train=args.max_train, text_max_test=args.max_test,
                                   max_length=args.max_length, batch_size=args.batch_size, replay_batch_size=args.replay_batch_size, log_csv=False,
                                   lamol_lm=args.lamol_lm, mbpa_steps=args.mbpa_steps, mbpa_test_batch=args.mbpa_test_batch,
                                   **method_settings(method, args.epochs)))
                results = run_experiment(config, out=folder, progress=False, checkpoints=False)
                print(f"{method} seed {seed}: avg acc {results['avg_acc']:.2f}, forgetting {results['forgetting']:.2f} "
                      f"({results['total_time_s']:.0f}s)", flush=True)
    print("| method | avg acc | forgetting | avg acc / forgetting per seed | time per run (s) | seeds |\n|---|---|---|---|---|---|")
    for method in args.methods:
        runs = [json.loads(p.read_text()) for p in sorted((args.out / method).glob("seed*/results.json"))]
        per_seed = ", ".join(f"{r['avg_acc']:.2f} / {r['forgetting']:.2f}" for r in runs) or "-"
        times = f"{min(r['total_time_s'] for r in runs):.0f}–{max(r['total_time_s'] for r in runs):.0f}" if runs else "-"
        print(f"| {method} | {mean_std([r['avg_acc'] for r in runs])} | {mean_std([r['forgetting'] for r in runs])} | "
              f"{per_seed} | {times} | {len(runs)} |")


if __name__ == "__main__":
    main()
