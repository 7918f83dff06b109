"""The paper's experiments that fit a CPU, in one process: 3 seeds, shortened epochs (stated in each row).

Writes one JSON line per run (method, benchmark, density, seed, KKT settings, epochs, avg_acc, forgetting,
mean sparse overlap, mean drift) to --out, so docs/paper.md can be rebuilt from it:

    python benchmarks/paper_cpu.py --out runs/paper_cpu.jsonl [--only readme,table2,density,kkt]

All studies but `readme` use 1 mask + 1 weight epoch (the paper: 30 in total), batch 64, lrs 0.01 / 0.001:
- readme: the `make run` setting (5 + 5 epochs, batch 128) for SupSup and SSNeT, seed 0;
- table2 (Tables 2, 3 and 11 SplitMNIST columns): SupSup / SSNeT / ExSSNeT, density 0.1, with and without KKT;
- density (Fig. 5 analogue): density 0.02 on SplitMNIST (0.1 is table2), 0.02 and 0.1 on Split-Fashion-MNIST;
- kkt (Tables 9 / 10 analogue): ExSSNeT + KKT on Split-Fashion-MNIST, (k, batches) in (10,10) (1,10) (50,10) (10,2) (10,50).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from exssnet.run.config import RunConfig
from exssnet.run.runner import run_experiment

METHODS = ("supsup", "ssnet", "exssnet")
SEEDS = (0, 1, 2)


def jobs(only: set[str]):
    """Runs in priority order; density and KKT runs seed by seed, so a cut-short batch stays balanced."""
    base = dict(model="lenet", threads=1, log_csv=False, batch_size=64, mask_lr=0.01, weight_lr=0.001,
                mask_epochs=1, weight_epochs=1)
    if "readme" in only:
        for m in ("supsup", "ssnet"):
            yield "readme", dict(benchmark="split-mnist", method=m, density=0.1, seed=0, threads=1, log_csv=False)
    if "table2" in only:
        for kkt in (False, True):
            for m in METHODS:
                for s in SEEDS:
                    yield ("table3" if kkt else "table2"), dict(base, benchmark="split-mnist", method=m, density=0.1, seed=s, kkt=kkt)
    for s in SEEDS:
        if "density" in only:
            for bench, densities in (("split-mnist", (0.02,)), ("split-fashion-mnist", (0.02, 0.1))):
                for d in densities:
                    for m in METHODS:
                        yield "density", dict(base, benchmark=bench, method=m, density=d, seed=s)
        if "kkt" in only and s == 0:
            yield from kkt_jobs(base, s)
    if "kkt" in only:
        for s in SEEDS[1:]:
            yield from kkt_jobs(base, s)


def kkt_jobs(base: dict, seed: int):
    for k, b in ((10, 10), (1, 10), (50, 10), (10, 2), (10, 50)):
        yield "kkt", dict(base, benchmark="split-fashion-mnist", method="exssnet", density=0.1, seed=seed,
                          kkt=True, kkt_k=k, kkt_batches=b)


def run_key(study: str, values: dict) -> tuple:
    return (study, values["benchmark"], values["method"], values["density"], values["seed"], bool(values.get("kkt")),
            values.get("kkt_k"), values.get("kkt_batches"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", default="readme,table2,density,kkt")
    args = parser.parse_args()
    torch.set_num_threads(1)
    done = set()
    if os.path.exists(args.out):  # rerunning the same command skips finished runs
        for line in open(args.out):
            r = json.loads(line)
            done.add(run_key(r["study"], {**r, "kkt": r["kkt"]}))
    with open(args.out, "a") as handle:
        for study, values in jobs(set(args.only.split(","))):
            if run_key(study, values) in done:
                continue
            start = time.perf_counter()
            config = RunConfig.from_dict(values)
            r = run_experiment(config, progress=False)
            every = [o for o in (r.get("sparse_overlap") or []) if o is not None]
            overlap = every[1:]
            row = {"study": study, **{k: values.get(k) for k in ("benchmark", "method", "density", "seed", "kkt", "kkt_k", "kkt_batches")},
                   "epochs": f"{config.mask_epochs}+{config.weight_epochs}", "avg_acc": r["avg_acc"], "forgetting": r["forgetting"],
                   "sparse_overlap": statistics.mean(overlap) if overlap else None,
                   "sparse_overlap_all_tasks": statistics.mean(every) if every else None,
                   "drift_changed": r["drift"]["avg_changed_predictions"], "drift_max_logit": max(r["drift"]["max_logit_change"]),
                   "seconds": time.perf_counter() - start}
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
