"""What the benchmark scripts' tables share: their JSON-lines rows, number formatting and generated markdown blocks."""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines results file (one object per line; blank lines skipped); none when it is absent."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_std(values: list[float], bare_single: bool = False) -> str:
    """`mean ± sample std` with 2 decimals; "-" for no values; one value alone is `v ± 0.00` (`v` with `bare_single`)."""
    if not values:
        return "-"
    if len(values) == 1 and bare_single:
        return f"{values[0]:.2f}"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}"


def replace_block(path: Path, name: str, body: str) -> None:
    """Rewrite the text between `<!-- name:begin -->` and `<!-- name:end -->` in `path` with `body`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path} has no {begin} ... {end} block")
    head, rest = text.split(begin, 1)
    path.write_text(head + begin + "\n" + body.rstrip() + "\n" + end + rest.split(end, 1)[1])
