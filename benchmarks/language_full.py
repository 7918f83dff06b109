"""The paper's Table 1 question on the offline text stream at full size: every language baseline next to ExSSNeT.

Every row runs `exssnet run` on text-offline with 200 / 100 examples per class (train / test), max length
128, 4 epochs per task (the paper's Table 13 runs "four epochs over each dataset"; Table 1 gives none):
SupSup 4 mask epochs; SSNeT / ExSSNeT 2 mask + 2 weight epochs (configs/table1-text-offline-exssnet.yaml's
recipe); every other row 4 `baseline_epochs`. Language methods fine-tune the encoder on raw text; the mask
methods and the dense er / der / joint / individual train a Kim CNN over the frozen encoder's cached features.
Each finished run appends ONE JSON line to OUT (default benchmarks/results/language_full.jsonl); a row that
OUT already holds (row, encoder, seed) is skipped, so the grid continues where it stopped. A run writes a
checkpoint after every task, and a run that was cut short continues from its last finished task (`--resume`):
an mpnet-base language row (hours on one thread) finishes over several sittings, on one machine (the run
folders are not committed). One thread per run unless `--threads`; workers started side by side share the grid,
each taking the next row no other worker holds (`benchmarks/grid_claims.py`). LAMOL's row (hours on one thread)
fits one sitting only alone with every core: `--rows lamol --threads 2`.
Replaying rows replay 8 examples per step (= the batch); MbPA++ adapts 2 steps per chunk of 64 test texts.

    PYTHONPATH=src python benchmarks/language_full.py                # run the grid (most informative rows first)
    PYTHONPATH=src python benchmarks/language_full.py --table [--docs docs/language.md]  # tables (and rewrite the doc's block)
    PYTHONPATH=src python benchmarks/language_full.py --list         # the grid's order, what is done, running, resumable
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cut_short import finished_tasks, total_seconds
from grid_claims import holding, is_held
from table_format import mean_std, read_jsonl, replace_block

from exssnet.run.config import methods_reading

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "configs/table1-text-offline-exssnet.yaml"
EPOCHS = 4
MAX_LENGTH = 128
PER_CLASS = (200, 100)
ENCODERS = ("minilm", "mpnet-base")
LAMOL_LM = "smollm2-135m"

# row name -> flags on top of CONFIG (kim-cnn, density 0.1, batch 8, mask/weight lr 0.001) and COMMON
MASK_ROWS = {
    "supsup": ["--method", "supsup", "--mask-epochs", str(EPOCHS), "--weight-epochs", "0"],
    "ssnet": ["--method", "ssnet"],
    "exssnet": ["--method", "exssnet"],
    "exssnet+kkt": ["--method", "exssnet", "--kkt"],
    "exssnet+kkt (paper rule)": ["--method", "exssnet", "--kkt", "--kkt-rule", "chance", "--kkt-head", "copy",
                                 "--no-kkt-rescue"],
    # density chosen on validation (benchmarks/language_val_study.py, MiniLM seed 0: 0.4 best of 0.05-0.7)
    "exssnet (density 0.4, validation)": ["--method", "exssnet", "--density", "0.4"],
}
FEATURE_ROWS = {name: ["--method", name, "--baseline-epochs", str(EPOCHS)] for name in ("er", "der", "joint", "individual")}
# language rows, roughly by cost (MbPA++'s test-time adaptation and LAMOL's LM training are the slowest)
LANGUAGE_ROWS = {name: ["--method", name, "--baseline-epochs", str(EPOCHS)]
                 for name in ("ft", "idbr", "replay", "adaptbert-ft", "adaptbert-replay", "multiadaptbert",
                              "regularization", "prompt-tuning", "mbpa")}
LANGUAGE_ROWS["mbpa"] += ["--mbpa-steps", "2", "--mbpa-test-batch", "64"]
# the LM trains and writes in bf16 mixed precision, as LAMOL's reference code trains in fp16 (1.93x per text with
# length-grouped batches on an AMX CPU: benchmarks/lamol_lm_cost.py); the classifier stays float32 like every row
LANGUAGE_ROWS["lamol"] = ["--method", "lamol", "--baseline-epochs", str(EPOCHS), "--lamol-lm", LAMOL_LM,
                          "--lamol-lm-amp", "bf16"]
# every replaying row replays as many examples per step as it learns (batch 8); the default 64 is 9x the compute
COMMON = ["--replay-batch-size", "8"]
FAST_ROWS = {**MASK_ROWS, **FEATURE_ROWS}  # Kim CNN over cached features: minutes per run
ROWS = {**FAST_ROWS, **LANGUAGE_ROWS}
KEY_ROWS = ("supsup", "exssnet", "ft", "idbr")  # the rows that get 3 seeds with mpnet-base


def grid() -> list[tuple[str, str, int]]:
    """(row, encoder, seed) in the order they run. A feature row takes minutes and a language row (fine-tuning the
    encoder on one thread) hours, so the cheap rows go first with every seed: they answer the headline question
    (does a dense baseline beat ExSSNeT, by more than the seed spread?) long before the language rows finish."""
    order = [(row, "minilm", seed) for seed in (0, 1, 2) for row in FAST_ROWS]
    order += [(row, "mpnet-base", 0) for row in FAST_ROWS]
    order += [(row, "minilm", 0) for row in LANGUAGE_ROWS]  # does a language row beat ExSSNeT? before more seeds
    order += [(row, "mpnet-base", seed) for seed in (1, 2) for row in ("supsup", "exssnet")]
    order += [(row, "mpnet-base", 0) for row in LANGUAGE_ROWS]
    order += [(row, "minilm", seed) for seed in (1, 2) for row in LANGUAGE_ROWS]
    order += [(row, "mpnet-base", seed) for seed in (1, 2) for row in ("ft", "idbr")]
    return order


def command(row: str, encoder: str, seed: int, out: Path, threads: int = 1) -> list[str]:
    common = COMMON if ROWS[row][1] in methods_reading("replay_batch_size") else []  # a run refuses a setting it does not read
    return ["exssnet", "run", "--config", CONFIG, *ROWS[row], *common, "--encoder", encoder, "--seed", str(seed),
            "--max-length", str(MAX_LENGTH), "--text-max-train", str(PER_CLASS[0]), "--text-max-test", str(PER_CLASS[1]),
            "--threads", str(threads), "--no-log-csv", "--quiet", "--overwrite", "--out", str(out)]


def run_folder(runs: Path, encoder: str, name: str, seed: int) -> Path:
    """Where one run writes its results: RUNS/ENCODER/NAME (spaces as _, no brackets)/seedN."""
    safe = name.replace(" ", "_").replace("(", "").replace(")", "")
    return runs / encoder / safe / f"seed{seed}"


def run_exssnet(argv: list[str], folder: Path) -> tuple[dict | None, float, str]:
    """Run `exssnet run` (argv from `command`) from the repo root: (its results.json or None when it failed, wall
    seconds, the last line of its stderr)."""
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return None, wall, (proc.stderr.strip().splitlines() or [""])[-1]
    return json.loads((ROOT / folder / "results.json").read_text()), wall, ""


def row_of(row: str, encoder: str, seed: int, results: dict, wall_s: float, argv: list[str], resumed_at: int) -> dict:
    """The JSON line of a finished run. A run resumed at task k counts, in wall_s, this sitting's wall time plus the
    training time of tasks 0..k-1 (their evaluation time is not recorded)."""
    matrix = results["acc_matrix"]
    wall_s = total_seconds(results, wall_s, resumed_at)
    return {"row": row, "method": results["method"], "seed": seed, "encoder": encoder,
            "text_max_train": results["config"]["text_max_train"], "text_max_test": results["config"]["text_max_test"],
            "max_length": results["config"]["max_length"], "epochs_per_task": EPOCHS,
            "avg_acc": results["avg_acc"], "forgetting": results["forgetting"],
            "final_acc": dict(zip(results["task_names"], matrix[-1])), "wall_s": round(wall_s, 1),
            "warnings": results.get("warnings", []), "command": shlex.join(argv),
            "cpu": results.get("environment", {}).get("cpu"),
            **({"resumed_at_task": resumed_at} if resumed_at else {})}


def done_rows(out: Path) -> set[tuple[str, str, int]]:
    """(row, encoder, seed) of every run OUT holds."""
    return {(r["row"], r["encoder"], r["seed"]) for r in read_jsonl(out)}


def claims_dir(args: argparse.Namespace) -> Path:
    return ROOT / args.runs / ".claims"


def claim_key(row: str, encoder: str, seed: int) -> str:
    return f"{encoder}/{row}/seed{seed}"


def selected(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """The grid's (row, encoder, seed) in order, kept to `--encoders` and `--rows` where given."""
    return [(row, encoder, seed) for row, encoder, seed in grid()
            if not (args.encoders and encoder not in args.encoders) and not (args.rows and row not in args.rows)]


def listing(args: argparse.Namespace) -> str:
    """The selected grid in order: done (*), running (a live worker holds it) or resumable (tasks finished and
    checkpointed by a run cut short), and a count of what is done."""
    done = done_rows(args.out)
    order = selected(args)
    lines = []
    for row, encoder, seed in order:
        name = " / ".join(map(str, (row, encoder, seed)))
        if (row, encoder, seed) in done:
            lines.append(f"* {name}")
            continue
        state = ["running"] if is_held(claims_dir(args), claim_key(row, encoder, seed)) else []
        tasks = finished_tasks(ROOT / run_folder(args.runs, encoder, row, seed))
        if tasks:
            state.append(f"{tasks} task(s) checkpointed")
        lines.append(f"  {name}" + (f"  ({', '.join(state)})" if state else ""))
    lines.append(f"{sum(key in done for key in order)} of {len(order)} done")
    return "\n".join(lines)


def run_grid(args: argparse.Namespace) -> None:
    """Run every row the grid's OUT lacks, in `grid()` order; workers started side by side share the rows (claims)."""
    for row, encoder, seed in selected(args):
        with holding(claims_dir(args), claim_key(row, encoder, seed)) as held:  # not held: another worker runs it
            # read once held: a row another worker finished meanwhile is in the file
            if held and (row, encoder, seed) not in done_rows(args.out):
                run_row(args, row, encoder, seed)


def run_row(args: argparse.Namespace, row: str, encoder: str, seed: int) -> None:
    """Run (or resume) one grid row and append its line to OUT."""
    folder = run_folder(args.runs, encoder, row, seed)
    threads = getattr(args, "threads", 1)
    argv = command(row, encoder, seed, folder, threads)
    resumed_at = finished_tasks(ROOT / folder)
    # threads may change on resume (a row started beside another worker continues alone on every core)
    run_argv = ["exssnet", "run", "--out", str(folder), "--resume", "--threads", str(threads), "--quiet"] if resumed_at else argv
    if resumed_at:
        print(f"{row} {encoder} seed {seed}: resuming after {resumed_at} finished task(s)", flush=True)
    results, wall, error = run_exssnet(run_argv, folder)
    if results is None and resumed_at:  # e.g. the row's settings changed since: start it again
        print(f"{row} {encoder} seed {seed}: cannot resume ({error}); starting again", flush=True)
        resumed_at, (results, wall, error) = 0, run_exssnet(argv, folder)
    if results is None:
        print(f"{row} {encoder} seed {seed}: FAILED ({wall:.0f}s): {error}", flush=True)
        return
    line = row_of(row, encoder, seed, results, wall, argv, resumed_at)
    with open(args.out, "a") as handle:
        handle.write(json.dumps(line) + "\n")
    print(f"{row} {encoder} seed {seed}: avg acc {line['avg_acc']:.2f}, forgetting {line['forgetting']:.2f} "
          f"({wall:.0f}s)", flush=True)


def table(rows: list[dict], encoder: str) -> str:
    """One markdown table: a line per grid row with mean ± sd over seeds, the gap to ExSSNeT, minutes per run."""
    mine = [r for r in rows if r["encoder"] == encoder]
    reference = [r["avg_acc"] for r in mine if r["row"] == "exssnet"]
    ref = statistics.mean(reference) if reference else None
    lines = ["| row | avg acc | forgetting | vs ExSSNeT | seeds | per-seed avg acc | min per run |",
             "|---|---|---|---|---|---|---|"]
    for name in ROWS:
        runs = sorted((r for r in mine if r["row"] == name), key=lambda r: r["seed"])
        if not runs:
            lines.append(f"| {name} | (not run yet) | | | 0 | | |")
            continue
        accs = [r["avg_acc"] for r in runs]
        gap = f"{statistics.mean(accs) - ref:+.2f}" if ref is not None and name != "exssnet" else ""
        minutes = statistics.mean(r["wall_s"] for r in runs) / 60
        lines.append(f"| {name} | {mean_std(accs, bare_single=True)} | {mean_std([r['forgetting'] for r in runs], bare_single=True)} | {gap} | "
                     f"{','.join(str(r['seed']) for r in runs)} | {', '.join(f'{a:.2f}' for a in accs)} | {minutes:.1f} |")
    return "\n".join(lines)


def per_task_table(rows: list[dict], encoder: str) -> str:
    """Final accuracy per task (mean over seeds) of every row that has a run."""
    mine = [r for r in rows if r["encoder"] == encoder]
    if not mine:
        return ""
    tasks = list(mine[0]["final_acc"])
    lines = ["| row | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for name in ROWS:
        runs = [r for r in mine if r["row"] == name]
        if runs:
            cells = [f"{statistics.mean(r['final_acc'][t] for r in runs):.1f}" for t in tasks]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(rows: list[dict], encoder: str) -> str:
    """Which rows beat ExSSNeT's mean, by how much, and whether the gap exceeds the seed spread."""
    mine = [r for r in rows if r["encoder"] == encoder]
    by_row = {name: [r["avg_acc"] for r in mine if r["row"] == name] for name in ROWS}
    ref = by_row.get("exssnet") or []
    if not ref:
        return f"{encoder}: no ExSSNeT run yet."
    ref_mean, ref_sd = statistics.mean(ref), statistics.stdev(ref) if len(ref) > 1 else 0.0
    above = []
    for name, accs in by_row.items():
        if name == "exssnet" or not accs or name in ("joint", "individual"):
            continue
        gap = statistics.mean(accs) - ref_mean
        if gap > 0:
            if len(accs) > 1 and len(ref) > 1:
                sd = statistics.stdev(accs)
                clear = "more than" if gap > ref_sd + sd else "within"
                above.append(f"{name} by {gap:.2f} ({len(accs)} seeds, sd {sd:.2f}; {clear} the two rows' sd summed)")
            else:
                above.append(f"{name} by {gap:.2f} (single seed: spread not known yet)")
    spread = f"sd {ref_sd:.2f} over {len(ref)} seeds" if len(ref) > 1 else "1 seed"
    head = f"{encoder}: ExSSNeT {ref_mean:.2f} ({spread}). "
    if not above:
        return head + "No continual row that has run beats it (joint and individual are upper references)."
    return head + "Continual rows above it: " + "; ".join(above) + "."


def generated(rows: list[dict]) -> str:
    parts = []
    for encoder in ENCODERS:
        parts += [f"**{encoder}** ({sum(r['encoder'] == encoder for r in rows)} runs)", "", table(rows, encoder), "",
                  verdict(rows, encoder), ""]
        if any(r["encoder"] == encoder for r in rows):
            parts += [f"Final accuracy per task, {encoder} (mean over seeds):", "", per_task_table(rows, encoder), ""]
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/language_full.jsonl")
    parser.add_argument("--runs", type=Path, default=Path("runs/language_full"), help="run folders (relative: repo root)")
    parser.add_argument("--encoders", nargs="*", help="only these encoders (default: both)")
    parser.add_argument("--rows", nargs="*", help="only these rows (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    parser.add_argument("--table", action="store_true", help="print the tables from OUT and stop")
    parser.add_argument("--list", action="store_true", help="print the grid's order (* = done; running and resumable rows say so) and stop; "
                        "kept to --encoders / --rows")
    parser.add_argument("--docs", type=Path, help="with --table: rewrite the generated block of this markdown file")
    args = parser.parse_args()
    if args.list:
        print(listing(args))
        return
    if not args.table:
        run_grid(args)
    rows = read_jsonl(args.out)
    if args.docs:
        replace_block(args.docs, "language_full", generated(rows))
    print(generated(rows))


if __name__ == "__main__":
    main()
