"""Group runs that differ only by seed and summarise each group by mean and standard deviation."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from exssnet.report.loading import Run
from exssnet.run.files import INCIDENTAL_KEYS

# Config keys allowed to differ inside a group without a warning (they do not change the experiment).
# runs that differ only in these keys (and the seed) form one group
GROUP_FREE_KEYS = INCIDENTAL_KEYS | {"seed"}


class GroupKey(NamedTuple):
    benchmark: str
    model: str
    method: str
    density: float
    kkt: bool
    num_tasks: int
    data: str = ""  # fingerprint of the data's content ("" for results that do not record it)


def group_key(run: Run) -> GroupKey:
    r, c = run.results, run.config
    return GroupKey(
        benchmark=str(r["benchmark"]), model=str(r.get("model", c.get("model", "?"))), method=str(r["method"]),
        density=float(r["density"]), kkt=bool(c.get("kkt", False)), num_tasks=len(r["acc_matrix"]),
        data=run.data_fingerprint,
    )


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

    @property
    def label(self) -> str:
        kkt = "+kkt" if self.key.kkt else ""
        return " ".join([f"{self.key.method}{kkt} d={self.key.density:g}", *(f"{k}={v}" for k, v in self.extra)])

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
    """Config keys (other than seed and machine settings) whose values differ between `runs`."""
    keys = set().union(*(run.config for run in runs)) - GROUP_FREE_KEYS
    return sorted(k for k in keys if len({repr(run.config.get(k)) for run in runs}) > 1)


def _split(group: Group) -> list[Group]:
    """Split a group whose runs differ in more than the seed into one group per distinct setting."""
    keys = varying_keys(group.runs)
    if not keys:
        return [group]
    parts: dict[tuple[tuple[str, str], ...], Group] = {}
    for run in group.runs:
        extra = tuple((k, str(run.config.get(k))) for k in keys)
        parts.setdefault(extra, Group(group.key, extra=extra)).runs.append(run)
    return list(parts.values())


def group_runs(runs: Iterable[Run]) -> list[Group]:
    """One group per experiment (runs that differ only by seed), sorted by benchmark, model, method, KKT, density."""
    groups: dict[GroupKey, Group] = {}
    for run in runs:
        key = group_key(run)
        groups.setdefault(key, Group(key)).runs.append(run)
    order = lambda g: (g.key.benchmark, g.key.data, g.key.model, g.key.num_tasks, g.key.method, g.key.kkt, g.key.density, g.extra)  # noqa: E731
    return sorted((part for group in groups.values() for part in _split(group)), key=order)


def series_by_method(groups: list[Group]) -> dict[str, list[Group]]:
    """Groups of one setting (method, KKT, other distinguishing keys) across densities, sorted by density."""
    series: dict[str, list[Group]] = {}
    for group in groups:
        name = " ".join([group.key.method + ("+kkt" if group.key.kkt else ""), *(f"{k}={v}" for k, v in group.extra)])
        series.setdefault(name, []).append(group)
    for members in series.values():
        members.sort(key=lambda g: g.key.density)
    return series
