"""Reports over results.json files: loading, aggregation over seeds, figures and a self-contained HTML page."""

from exssnet.report.aggregate import Group, group_runs
from exssnet.report.build import build_report
from exssnet.report.loading import Run, load_runs

__all__ = ["Group", "Run", "build_report", "group_runs", "load_runs"]
