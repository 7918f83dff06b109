"""Number formatting shared by the benchmark scripts' markdown tables."""

from __future__ import annotations

import statistics


def mean_std(values: list[float], bare_single: bool = False) -> str:
    """`mean ± sample std` with 2 decimals; "-" for no values; one value alone is `v ± 0.00` (`v` with `bare_single`)."""
    if not values:
        return "-"
    if len(values) == 1 and bare_single:
        return f"{values[0]:.2f}"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}"
