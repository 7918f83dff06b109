"""Group runs that differ only by seed and summarise each group by mean and standard deviation.

Only what the run's method reads tells groups apart (exssnet.report.method_keys): a language method's group has no
model or density. Runs that differ in any other recorded setting (the world size included) are never pooled, and
two runs of one seed are never averaged as two seeds: the first (by path) counts, the others are listed as duplicates.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from exssnet.report.loading import Run
from exssnet.report.method_keys import reads
from exssnet.run.files import INCIDENTAL_KEYS

# Config keys allowed to differ inside a group (they do not change what is computed); runs that differ only in these
# keys and the seed form one group. The world size is not one of them here: it changes the masks a run learns.
GROUP_FREE_KEYS = (INCIDENTAL_KEYS - {"world_size"}) | {"seed"}
# shown in their own columns, not as "other settings"
KEY_COLUMNS = frozenset({"benchmark", "method", "model", "density", "kkt", "num_tasks"})


class GroupKey(NamedTuple):
    benchmark: str
    model: str  # "" for a method that does not read `model`
    method: str
    density: float | None  # None for a method without masks
    kkt: bool
    num_tasks: int
    data: str = ""  # fingerprint of the data's content ("" for results that do not record it)
    examples: str = ""  # the examples read, whatever their form (Run.examples)


def group_key(run: Run) -> GroupKey:
    r, c = run.results, run.config
    method = str(r["method"])
    return GroupKey(
        benchmark=str(r["benchmark"]), model=str(r.get("model", c.get("model", "?"))) if reads(method, "model") else "",
        method=method, density=float(r["density"]) if reads(method, "density") else None,
        kkt=bool(c.get("kkt", False)) and reads(method, "kkt"), num_tasks=len(r["acc_matrix"]),
        data=run.data_fingerprint, examples=run.examples,
    )


def recorded_settings(run: Run) -> dict[str, object]:
    """The settings that make a run what it is: its config keys that its method reads, and its world size."""
    method = str(run.results["method"])
    kept = {k: v for k, v in run.config.items() if k not in GROUP_FREE_KEYS and reads(method, k)}
    kept["world_size"] = run.world_size
    return kept


@dataclass
class Stat:
    """Mean and sample standard deviation (0 for a single value)."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Stat":
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))

    def format(self, digits: int = 2) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}" if self.n > 1 else f"{self.mean:.{digits}f}"


def mean_over_tasks_after_first(overlap: list[float]) -> float:
    """Mean sparse overlap of tasks 1..N-1 (task 0 has nothing to overlap with); 0 for one task."""
    return statistics.fmean(overlap[1:]) if len(overlap) > 1 else 0.0


@dataclass
class Group:
    """Runs of one experiment (same benchmark, data, model, method, density, KKT, task count), one per seed."""

    key: GroupKey
    runs: list[Run] = field(default_factory=list)
    extra: tuple[tuple[str, str], ...] = ()  # other config keys that tell this group from its siblings
    duplicates: list[Run] = field(default_factory=list)  # further runs of a seed already in `runs` (not pooled)
    show_model: bool = False  # the label names the model (set when one plot holds groups of several models)

    @property
    def name(self) -> str:
        """Method, KKT and density where the method reads them (what tells series apart on one plot)."""
        kkt = "+kkt" if self.key.kkt else ""
        density = f" d={self.key.density:g}" if self.key.density is not None else ""
        return f"{self.key.method}{kkt}{density}"

    @property
    def label(self) -> str:
        model = [self.key.model] if self.show_model and self.key.model else []
        return " ".join([self.name, *model, *(f"{k}={v}" for k, v in self.extra)])

    @property
    def duplicate_note(self) -> str:
        """'seed 0: 2 runs (same accuracies)' for each seed run more than once; "" when none."""
        notes = []
        for seed in sorted({int(r.results["seed"]) for r in self.duplicates}):
            first = next(r for r in self.runs if int(r.results["seed"]) == seed)
            others = [r for r in self.duplicates if int(r.results["seed"]) == seed]
            same = all(r.results["acc_matrix"] == first.results["acc_matrix"] for r in others)
            notes.append(f"seed {seed}: {1 + len(others)} runs ({'same' if same else 'different'} accuracies)")
        return "; ".join(notes)

    @property
    def data_dirs(self) -> list[str]:
        """Where the runs read their data ("" for a benchmark's built-in source)."""
        return sorted({run.data_dir for run in self.runs})

    @property
    def seeds(self) -> list[int]:
        return sorted(int(run.results["seed"]) for run in self.runs)

    @property
    def avg_acc(self) -> Stat:
        return Stat.of([float(run.results["avg_acc"]) for run in self.runs])

    @property
    def forgetting(self) -> Stat:
        return Stat.of([float(run.results["forgetting"]) for run in self.runs])

    def _class_il(self, key: str) -> Stat | None:
        values = [run.class_il.get(key) for run in self.runs if run.class_il is not None]
        if len(values) != len(self.runs) or not all(isinstance(v, (int, float)) for v in values):
            return None
        return Stat.of([float(v) for v in values])  # type: ignore[arg-type]

    @property
    def task_inference(self) -> Stat | None:
        """Class-IL: mean over tasks of the task-inference accuracy (%), None for task-IL runs."""
        return self._class_il("avg_task_inference_acc")

    @property
    def class_il_acc(self) -> Stat | None:
        """Class-IL: mean over tasks of the accuracy with the inferred task id (%), None for task-IL runs."""
        return self._class_il("avg_inferred_acc")

    @property
    def has_overlap(self) -> bool:
        return all(run.overlap for run in self.runs)

    @property
    def overlap(self) -> Stat | None:
        """Mean sparse overlap (tasks after the first) over seeds, or None for methods without masks."""
        if not self.has_overlap:
            return None
        return Stat.of([mean_over_tasks_after_first(run.overlap) for run in self.runs])  # type: ignore[arg-type]

    @property
    def overlap_per_task(self) -> list[float] | None:
        if not self.has_overlap:
            return None
        return [statistics.fmean(v) for v in zip(*(run.overlap for run in self.runs))]  # type: ignore[misc]

    @property
    def curve(self) -> tuple[list[float], list[float]]:
        """Mean and std over seeds of the average accuracy of seen tasks after each task."""
        stats = [Stat.of(list(values)) for values in zip(*(run.curve for run in self.runs))]
        return [s.mean for s in stats], [s.std for s in stats]

    @property
    def acc_matrix(self) -> list[list[float | None]]:
        """Entry-wise mean accuracy matrix over seeds (None above the diagonal)."""
        n = self.key.num_tasks
        return [
            [statistics.fmean(run.results["acc_matrix"][i][j] for run in self.runs) if j <= i else None for j in range(n)]
            for i in range(n)
        ]

    @property
    def total_time(self) -> Stat | None:
        times = [run.results["total_time_s"] for run in self.runs if "total_time_s" in run.results]
        return Stat.of(times) if len(times) == len(self.runs) else None


def varying_keys(runs: list[Run]) -> list[str]:
    """Recorded settings (other than seed, incidental keys and keys the method ignores) that differ between `runs`."""
    settings = [recorded_settings(run) for run in runs]
    keys = set().union(*settings) - KEY_COLUMNS
    return sorted(k for k in keys if len({repr(s.get(k)) for s in settings}) > 1)


def _one_run_per_seed(group: Group) -> Group:
    """Keep the first run (by path) of each seed; the others become the group's duplicates."""
    seen: set[int] = set()
    runs, group.runs = sorted(group.runs, key=lambda r: r.path.parts), []
    for run in runs:
        seed = int(run.results["seed"])
        (group.duplicates if seed in seen else group.runs).append(run)
        seen.add(seed)
    return group


def _split(group: Group) -> list[Group]:
    """Split a group whose runs differ in more than the seed into one group per distinct setting."""
    keys = varying_keys(group.runs)
    if not keys:
        return [_one_run_per_seed(group)]
    parts: dict[tuple[tuple[str, str], ...], Group] = {}
    for run in group.runs:
        settings = recorded_settings(run)
        extra = tuple((k, str(settings.get(k))) for k in keys)
        parts.setdefault(extra, Group(group.key, extra=extra)).runs.append(run)
    return [_one_run_per_seed(part) for part in parts.values()]


def group_runs(runs: Iterable[Run]) -> list[Group]:
    """One group per experiment (runs that differ only by seed), sorted by benchmark, model, method, KKT, density."""
    groups: dict[GroupKey, Group] = {}
    for run in runs:
        key = group_key(run)
        groups.setdefault(key, Group(key)).runs.append(run)
    order = lambda g: (g.key.benchmark, g.key.examples, g.key.num_tasks, g.key.data, g.key.model, g.key.method,  # noqa: E731
                       g.key.kkt, g.key.density or 0.0, g.extra)
    found = sorted((part for group in groups.values() for part in _split(group)), key=order)
    for members in by_stream(found).values():  # name the model where one plot holds several
        several = len({g.key.model for g in members if g.key.model}) > 1
        for g in members:
            g.show_model = several
    return found


def by_stream(groups: list[Group]) -> dict[tuple[str, str, int], list[Group]]:
    """Groups that read the same examples (benchmark, examples, task count): one table block and one set of plots."""
    found: dict[tuple[str, str, int], list[Group]] = {}
    for group in groups:
        found.setdefault((group.key.benchmark, group.key.examples, group.key.num_tasks), []).append(group)
    return found


def series_by_method(groups: list[Group]) -> dict[str, list[Group]]:
    """Groups of one setting (method, KKT, model, other keys) across densities, sorted by density (mask methods)."""
    series: dict[str, list[Group]] = {}
    for group in groups:
        model = [group.key.model] if group.show_model and group.key.model else []
        name = " ".join([group.key.method + ("+kkt" if group.key.kkt else ""), *model, *(f"{k}={v}" for k, v in group.extra)])
        series.setdefault(name, []).append(group)
    for members in series.values():
        members.sort(key=lambda g: g.key.density or 0.0)
    return series
