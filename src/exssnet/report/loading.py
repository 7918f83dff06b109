"""Find and read results.json files, with a clear error for anything that is not one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from exssnet.errors import ExssnetError
from exssnet.metrics import average_accuracy_curve
from exssnet.run.files import RESULTS_FILE

REQUIRED_KEYS = ("method", "benchmark", "density", "seed", "acc_matrix", "avg_acc", "forgetting")


@dataclass
class Run:
    """One results.json and where it came from."""

    path: Path
    results: dict

    @property
    def config(self) -> dict:
        return self.results.get("config") or {}

    @property
    def curve(self) -> list[float]:
        """Average accuracy over seen tasks after each task (computed when the file lacks it)."""
        return self.results.get("avg_acc_curve") or average_accuracy_curve(self.results["acc_matrix"])

    @property
    def data_fingerprint(self) -> str:
        """Fingerprint of the data's content, "" when the file does not record it."""
        info = self.results.get("benchmark_info")
        value = info.get("data_fingerprint") if isinstance(info, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def data_dir(self) -> str:
        """The data folder the run read (absolute when recorded so), "" for the benchmark's built-in source."""
        info = self.results.get("benchmark_info")
        value = info.get("data_dir") if isinstance(info, dict) else None
        value = value or self.config.get("data_dir")
        return value if isinstance(value, str) else ""

    @property
    def examples(self) -> str:
        """What identifies the examples the run read, whatever form they took (frozen-encoder features or tokens).

        Text benchmarks (their info records `task_sizes`): the benchmark, its tasks in order with their sizes and the
        sampling seed, so a token-input and a feature-input run on one stream match; the data fingerprint can not tell
        this (it hashes the input tensors). Other benchmarks: the data fingerprint.
        """
        info = self.results.get("benchmark_info")
        if isinstance(info, dict) and isinstance(info.get("task_sizes"), dict):
            stream = {"benchmark": self.results.get("benchmark"), "tasks": self.results.get("task_names"),
                      "sizes": info["task_sizes"], "sample_seed": info.get("sample_seed"),
                      "max_length": info.get("max_length")}
            digest = hashlib.blake2b(json.dumps(stream, sort_keys=True).encode(), digest_size=12).hexdigest()
            return f"text-{digest}"
        return self.data_fingerprint

    @property
    def world_size(self) -> int:
        """Processes the run was trained with (results.json `config` or `environment`; 1 when not recorded)."""
        for place in (self.config, self.results.get("environment") or {}):
            value = place.get("world_size") if isinstance(place, dict) else None
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return 1

    @property
    def class_il(self) -> dict | None:
        """The class-IL evaluation (task inference, then classification), None for a task-IL run."""
        value = self.results.get("class_il")
        return value if isinstance(value, dict) else None

    @property
    def overlap(self) -> list[float] | None:
        return self.results.get("sparse_overlap")


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Each path is a results.json or a folder searched recursively; sorted, without repeats."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            hits = sorted(path.rglob(RESULTS_FILE))
            if not hits:
                raise ExssnetError(f"no {RESULTS_FILE} found under {path}")
            found.extend(hits)
        else:
            raise ExssnetError(f"{path} does not exist")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def read_run(path: Path) -> Run:
    """Parse one results file; refuse files that are not exssnet results."""
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ExssnetError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ExssnetError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(results, dict):
        raise ExssnetError(f"{path} does not hold a results object")
    missing = [key for key in REQUIRED_KEYS if key not in results]
    if missing:
        raise ExssnetError(f"{path} is not an exssnet results file: missing {', '.join(missing)}")
    acc = results["acc_matrix"]
    if not isinstance(acc, list) or not acc or any(not isinstance(row, list) or len(row) != len(acc) for row in acc):
        raise ExssnetError(f"{path}: acc_matrix must be a square list of rows")
    learned = [row[j] for i, row in enumerate(acc) for j in range(i + 1)]
    numbers = [results["avg_acc"], results["forgetting"], results["density"], *learned]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
        raise ExssnetError(f"{path}: acc_matrix (on and below the diagonal), avg_acc, forgetting and density must be numbers")
    return Run(path, results)


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every results.json named by or found under `paths`."""
    return [read_run(path) for path in find_results(paths)]
