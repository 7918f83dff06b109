"""WSN's Table 1 Permuted MNIST column (Kang et al., ICML 2022) rerun here: the wsn-t1-pmnist-* presets over seeds.

Each finished run appends one JSON line to benchmarks/results/wsn_pmnist.jsonl (preset, seed, avg_acc, the mean of
the accuracy matrix's diagonal (WSN's printed number), forgetting, capacity, bits_per_param_per_task, seconds,
exssnet version, the preset's settings); a (preset, seed) already there with the preset's current settings is
skipped, so the grid can be stopped and started again, and a preset whose settings changed runs again (the table
shows the rows of each preset's current settings, and rows of earlier settings apart, with what differed). Runs go
one at a time, seed by seed, with `--threads` torch threads (workers started side by side share the grid: each takes
the next run no other worker holds, `benchmarks/grid_claims.py`); their folders go under --out (results.json each), with a
checkpoint after every task: a run cut short goes on from its last finished task when the grid starts again.
Then the table: ours (mean +- sample std over the seeds found) beside WSN's published mean +- std.

    PYTHONPATH=src python benchmarks/wsn_pmnist.py [--presets naive supsup ...] [--seeds 0 1 2 3 4] [--threads 1]
        [--out runs/wsn-pmnist] [--results benchmarks/results/wsn_pmnist.jsonl] [--table-only] [--docs docs/wsn.md]
        [--num-tasks N --epochs E]   (a shortened check; such rows are kept apart by their `short` field)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from cut_short import finished_tasks, total_seconds
from grid_claims import holding
from table_format import mean_std, read_jsonl, replace_block

from exssnet import __version__
from exssnet.errors import ExssnetError
from exssnet.run.config import RunConfig, key_defaults, load_yaml, methods_reading
from exssnet.run.runner import run_experiment

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
RESULTS = ROOT / "benchmarks" / "results" / "wsn_pmnist.jsonl"
PREFIX = "wsn-t1-pmnist-"
# Kang et al. 2022, Table 1, PMNIST ACC (mean, std over 5 seeds); the row each preset is compared with
PUBLISHED: dict[str, tuple[str, float, float | None]] = {
    "individual": ("STL", 97.37, 0.01),
    "naive": ("FINETUNE", 78.22, 0.84),
    "ewc": ("EWC", 92.01, 0.56),
    "packnet": ("PackNet", 96.37, 0.04),
    "supsup": ("SupSup", 96.31, 0.09),
    "wsn-c0.03": ("WSN c=0.03", 94.84, 0.11),
    "wsn-c0.05": ("WSN c=0.05", 95.65, 0.03),
    "wsn-c0.1": ("WSN c=0.1", 96.14, 0.03),
    "wsn-c0.3": ("WSN c=0.3", 96.41, 0.07),
    "wsn-c0.5": ("WSN c=0.5", 96.24, 0.11),
    "joint": ("MTL", 96.70, 0.02),
}


def presets() -> list[str]:
    """The preset names (without the prefix) in configs/, in file order."""
    return [p.stem.removeprefix(PREFIX) for p in sorted(CONFIGS.glob(f"{PREFIX}*.yaml"))]


def shortened(values: dict, num_tasks: int | None, epochs: int | None) -> dict:
    """The preset with fewer tasks and/or `epochs` epochs per task (phases scaled, mask phase at least 1)."""
    out = dict(values)
    if num_tasks is not None:
        out["num_tasks"] = num_tasks
    if epochs is not None:
        if "baseline_epochs" in out:
            out["baseline_epochs"] = epochs
        elif not out.get("mask_epochs"):  # packnet: its phases are weight phases
            out["weight_epochs"] = epochs
        else:
            total = out.get("mask_epochs", 0) + out.get("weight_epochs", 0)
            mask = max(1, round(epochs * out.get("mask_epochs", 0) / total))
            out["mask_epochs"], out["weight_epochs"] = mask, (epochs - mask if out.get("weight_epochs") else 0)
    return out


def diagonal_mean(acc: list[list[float | None]]) -> float:
    """WSN's printed average: the mean of acc[t][t] (each task right after it was learned)."""
    return sum(acc[t][t] for t in range(len(acc))) / len(acc)  # type: ignore[misc]


def preset_settings(name: str) -> dict:
    """The preset's values without its seed: what a row's `settings` must equal to count as the preset's."""
    return {k: v for k, v in load_yaml(CONFIGS / f"{PREFIX}{name}.yaml").items() if k != "seed"}


def is_current(row: dict) -> bool:
    """Was `row` run with its preset's current settings?"""
    return row.get("settings") == preset_settings(row["preset"])


def head_of(settings: dict) -> str:
    """The classifier a preset's settings give: a mask method's `head`, or the dense baselines' per-task heads."""
    return settings.get("head", "masked") if settings["method"] in methods_reading("head") else "dense per task"


def differences(settings: dict, current: dict) -> str:
    """`key value (now value)` for each setting that differs from the preset's current ones."""
    defaults = key_defaults()  # a key a preset leaves out has the run's default
    keys = sorted(set(settings) | set(current))
    return ", ".join(f"{k} {settings.get(k, defaults.get(k))} (now {current.get(k, defaults.get(k))})" for k in keys
                     if settings.get(k) != current.get(k))


def run_one(name: str, seed: int, threads: int, out: Path, short: dict | None) -> dict:
    values = load_yaml(CONFIGS / f"{PREFIX}{name}.yaml")
    if short:
        values = shortened(values, short.get("num_tasks"), short.get("epochs"))
    config = RunConfig.from_dict({**values, "seed": seed, "threads": threads, "log_csv": False})
    folder = out / name / (f"seed{seed}" + ("-short" if short else ""))
    resumed_at = finished_tasks(folder)  # a run cut short (the session ended) goes on from its last finished task
    try:
        results = run_experiment(config, out=folder, progress=False, resume=bool(resumed_at), overwrite=not resumed_at)
    except ExssnetError as exc:
        if not resumed_at:
            raise
        print(f"{name} seed {seed}: cannot resume ({exc}); starting again", flush=True)
        resumed_at, results = 0, run_experiment(config, out=folder, progress=False, overwrite=True)
    return {"preset": name, "seed": seed, "avg_acc": results["avg_acc"], "diagonal_acc": diagonal_mean(results["acc_matrix"]),
            "forgetting": results["forgetting"], "capacity": results.get("capacity"),
            "bits_per_param_per_task": results.get("bits_per_param_per_task"), "seconds": total_seconds(results, results["total_time_s"], resumed_at),
            "tasks": len(results["acc_matrix"]), "short": short, "exssnet": __version__,
            "settings": preset_settings(name)}


def run_row(args: argparse.Namespace, name: str, seed: int, short: dict | None) -> None:
    """Run one preset and seed unless RESULTS has it (current settings), and append its line."""
    done = {(r["preset"], r["seed"], json.dumps(r.get("short"), sort_keys=True))
            for r in read_jsonl(args.results) if is_current(r)}
    if (name, seed, json.dumps(short, sort_keys=True)) in done:
        return
    try:
        row = run_one(name, seed, args.threads, args.out, short)
    except ExssnetError as error:  # e.g. a diverged run: say so and go on with the grid (nothing recorded)
        print(f"{name} seed {seed}: FAILED: {error}", flush=True)
        return
    with args.results.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{name} seed {seed}: avg acc {row['avg_acc']:.2f}, forgetting {row['forgetting']:.2f}, "
          f"capacity {row['capacity']}, {row['seconds']:.0f}s", flush=True)


def table(rows: list[dict], names: list[str]) -> str:
    """Markdown: per preset, ours (avg acc, forgetting, capacity, seeds, minutes per run) with its current settings,
    and WSN's row."""
    lines = ["| preset | head | ours: avg acc | forgetting | capacity % | bits/param/task | seeds | min/run | WSN row | WSN ACC | gap |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        runs = [r for r in rows if r["preset"] == name and not r.get("short") and is_current(r)]
        head = head_of(preset_settings(name))
        published = PUBLISHED.get(name)
        ours = [r["avg_acc"] for r in runs]
        gap = f"{statistics.mean(ours) - published[1]:+.2f}" if runs and published else "-"
        cap = [r["capacity"] for r in runs if r.get("capacity") is not None]
        bits = [r["bits_per_param_per_task"] for r in runs if r.get("bits_per_param_per_task") is not None]
        minutes = f"{statistics.mean(r['seconds'] for r in runs) / 60:.1f}" if runs else "-"
        theirs = f"{published[1]:.2f} ± {published[2]:.2f}" if published else "-"
        lines.append(f"| {name} | {head} | {mean_std(ours, bare_single=True)} | {mean_std([r['forgetting'] for r in runs], bare_single=True)} | "
                     f"{f'{statistics.mean(cap):.2f}' if cap else '-'} | {f'{statistics.mean(bits):.3f}' if bits else '-'} | "
                     f"{len(runs)} | {minutes} | {published[0] if published else '-'} | {theirs} | {gap} |")
    return "\n".join(lines)


def earlier_table(rows: list[dict], names: list[str]) -> str:
    """Markdown: rows run with settings their preset no longer has, one line per preset and settings."""
    lines = ["| preset | what differed | ours: avg acc | forgetting | capacity % | seeds | WSN ACC |", "|---|---|---|---|---|---|---|"]
    for name in names:
        groups: dict[str, list[dict]] = {}
        for r in rows:
            if r["preset"] == name and not r.get("short") and not is_current(r):
                groups.setdefault(differences(r.get("settings") or {}, preset_settings(name)), []).append(r)
        published = PUBLISHED.get(name)
        for what, runs in groups.items():
            cap = [r["capacity"] for r in runs if r.get("capacity") is not None]
            lines.append(f"| {name} | {what} | {mean_std([r['avg_acc'] for r in runs], bare_single=True)} | "
                         f"{mean_std([r['forgetting'] for r in runs], bare_single=True)} | "
                         f"{f'{statistics.mean(cap):.2f}' if cap else '-'} | {len(runs)} | "
                         f"{f'{published[1]:.2f}' if published else '-'} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=None, help="preset names without the prefix (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/wsn-pmnist"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--num-tasks", type=int, default=None, help="shortened check: first N tasks only")
    parser.add_argument("--epochs", type=int, default=None, help="shortened check: epochs per task")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--docs", type=Path, help="also rewrite the wsn_pmnist block of this markdown file with the table")
    args = parser.parse_args(argv)
    known = presets()
    names = args.presets or known
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"wsn_pmnist: error: unknown preset(s) {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    short = {k: v for k, v in (("num_tasks", args.num_tasks), ("epochs", args.epochs)) if v is not None} or None
    if not args.table_only:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        claims = args.out / ".claims"  # workers started side by side share the grid (benchmarks/grid_claims.py)
        for seed in args.seeds:
            for name in names:
                with holding(claims, f"{name}/seed{seed}" + ("-short" if short else "")) as held:
                    if held:  # else another worker runs it
                        run_row(args, name, seed, short)
    rows = read_jsonl(args.results)
    text = table(rows, names)
    earlier = earlier_table(rows, names)
    if earlier:
        text += "\n\nRows run with earlier settings of their preset (not in the table above):\n\n" + earlier
    if args.docs:
        replace_block(args.docs, "wsn_pmnist", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
