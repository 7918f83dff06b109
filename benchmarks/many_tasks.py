"""Many tasks: per-task training time must stay flat and per-task memory must stay at the mask bits.

Learns `--tasks` two-class tasks of pairs-mnist-fashion (MNIST digits + Fashion-MNIST classes) with
the normal runner, and prints for tasks 1, 10, 50 (1-based): training time of that task (without the
evaluation of seen tasks, which is O(T) by nature and printed apart), time per training step, bytes
held per finished task (packed mask + BatchNorm statistics + kept scores) and the growth of the whole
network state per task; then peak RSS.

    python benchmarks/many_tasks.py [--tasks 50] [--method exssnet] [--mask-epochs 1] [--weight-epochs 1]
                                    [--keep-scores] [--class-il] [--threads 1]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from exssnet.footprint import state_bytes, task_footprint
from exssnet.methods.base import ContinualMethod
from exssnet.run.config import RunConfig
from exssnet.run.hooks import RunHook
from exssnet.run.runner import run_experiment


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class ScaleProbe(RunHook):
    """Records per-task timing and memory right after each task is learned and evaluated."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.base_state = 0
        self.last = 0.0

    def on_run_start(self, config: dict, task_names: list[str]) -> None:
        self.last = time.perf_counter()

    def on_task_end(self, task: int, method: ContinualMethod, acc_row: list[float], record: dict) -> None:
        now = time.perf_counter()
        net = method.net  # type: ignore[attr-defined]
        if task == 0:
            first = task_footprint(net, 0)
            self.base_state = state_bytes(net) - first.total  # shared weights + union, before any task
        footprints = [task_footprint(net, t) for t in range(task + 1)]
        self.rows.append({
            "task": task + 1,
            "train_s": record["wall_time_s"],
            "eval_s": now - self.last - record["wall_time_s"],
            "per_task_bytes": sum(f.total for f in footprints) / (task + 1),
            "mask_bytes": footprints[-1].mask,
            "bn_bytes": footprints[-1].batchnorm,
            "score_bytes": footprints[-1].scores,
            "state_growth_per_task": (state_bytes(net) - self.base_state) / (task + 1),
            "rss_mb": rss_mb(),
        })
        self.last = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--method", default="exssnet")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--mask-epochs", type=int, default=1)
    parser.add_argument("--weight-epochs", type=int, default=1)
    parser.add_argument("--keep-scores", action="store_true", help="keep old tasks' float scores (default: bits only)")
    parser.add_argument("--class-il", action="store_true", help="also run class-IL task inference over all tasks at the end")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    config = RunConfig(
        benchmark="pairs-mnist-fashion", method=args.method, density=args.density, num_tasks=args.tasks,
        mask_epochs=args.mask_epochs, weight_epochs=args.weight_epochs, keep_scores=args.keep_scores,
        threads=args.threads, device=args.device, scenario="class-il" if args.class_il else "task-il",
    )
    probe = ScaleProbe()
    results = run_experiment(config, progress=False, hooks=[probe])
    rows = probe.rows
    if "class_il" in results:  # it ran after the last task, inside that task's evaluation time
        rows[-1]["eval_s"] -= results["class_il"]["eval_time_s"]
    print(f"{args.method} on pairs-mnist-fashion, {args.tasks} two-class tasks, LeNet, density {args.density}, "
          f"{args.mask_epochs}+{args.weight_epochs} epochs, keep_scores={args.keep_scores}, {args.threads} thread(s)")
    print(f"{'task':>5} {'train s':>8} {'eval s':>8} {'bytes/finished task':>20} {'mask B':>8} {'BN B':>6} "
          f"{'scores B':>9} {'state growth/task':>18} {'RSS MB':>8}")
    for row in rows:
        if row["task"] in (1, 10, 50) or row["task"] == len(rows):
            print(f"{row['task']:>5} {row['train_s']:8.2f} {row['eval_s']:8.2f} {row['per_task_bytes']:20.0f} "
                  f"{row['mask_bytes']:8d} {row['bn_bytes']:6d} {row['score_bytes']:9d} "
                  f"{row['state_growth_per_task']:18.0f} {row['rss_mb']:8.1f}")
    train = [row["train_s"] for row in rows]
    for lo, hi in ((1, 5), (6, 15), (len(rows) - 4, len(rows))):
        if 1 <= lo <= hi <= len(rows):
            print(f"median train time of tasks {lo}-{hi}: {statistics.median(train[lo - 1 : hi]):.2f} s")
    print(f"average task-given accuracy: {results['avg_acc']:.2f}")
    if "class_il" in results:
        c = results["class_il"]
        print(f"class-IL ({c['mode']}, BN {c['bn']}): task-inference accuracy {c['avg_task_inference_acc']:.2f}, "
              f"inferred-task accuracy {c['avg_inferred_acc']:.2f}, {c['eval_time_s']:.1f} s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")


if __name__ == "__main__":
    main()
