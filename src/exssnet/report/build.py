"""Assemble a report folder: figures, summary.csv and report.html from results.json files."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Callable, Iterable

from exssnet.errors import ExssnetError
from exssnet.report import figures
from exssnet.report.aggregate import Group, by_stream, group_runs, series_by_method
from exssnet.report.html import COLUMNS, Section, render_page, short_examples, table_rows, text_table
from exssnet.report.loading import load_runs

REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.csv"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def settings(groups: list[Group]) -> dict[str, list[Group]]:
    """Groups that read the same examples (benchmark, examples, task count), comparable on one plot, by section name.

    Token-input and feature-input runs of one text stream land in one section. The examples' identity is named only
    where one benchmark has several; the models are named where the groups' methods read one.
    """
    streams = by_stream(groups)
    per_benchmark: dict[tuple[str, int], set[str]] = {}
    for benchmark, examples, tasks in streams:
        per_benchmark.setdefault((benchmark, tasks), set()).add(examples)
    found: dict[str, list[Group]] = {}
    for (benchmark, examples, tasks), members in streams.items():
        data = f", data {short_examples(examples)}" if len(per_benchmark[(benchmark, tasks)]) > 1 else ""
        models = "/".join(sorted({g.key.model for g in members if g.key.model}))
        name = ", ".join(part for part in (f"{benchmark}{data}", models, f"{tasks} tasks") if part)
        found.setdefault(name, []).extend(members)
    return found


def setting_section(name: str, groups: list[Group], out: Path) -> Section:
    """Every figure that has something to show for one setting."""
    section = Section(name)
    stem = slug(name)
    section.figures.append((f"Average accuracy of seen tasks vs tasks learned (paper Fig. 6), {name}",
                            figures.accuracy_curves(groups, name, out / f"avg_acc_curve_{stem}.png")))
    with_overlap = [g for g in groups if g.has_overlap]
    if with_overlap:
        section.figures.append((f"Per-task sparse overlap, {name}",
                                figures.overlap_per_task(with_overlap, name, out / f"sparse_overlap_{stem}.png")))
    series = series_by_method([g for g in groups if g.key.density is not None])
    if any(len(v) > 1 for v in series.values()):
        section.figures.append((f"Average accuracy vs mask density (paper Fig. 2/5), {name}",
                                figures.accuracy_vs_density(series, name, out / f"acc_vs_density_{stem}.png")))
    if len(with_overlap) > 1:
        section.figures.append((f"Average accuracy vs sparse overlap, labels are densities (paper Fig. 3), {name}",
                                figures.accuracy_vs_overlap(series, name, out / f"acc_vs_overlap_{stem}.png")))
    for group in groups:
        caption = f"Accuracy matrix, {group.label}, mean over seeds {group.seeds}"
        png = out / f"acc_matrix_{stem}_{slug(group.label)}.png"
        section.figures.append((caption, figures.accuracy_heatmap(group, f"{name}: {group.label}", png)))
    return section


def write_summary_csv(groups: list[Group], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(table_rows(groups, path.parent))
    return path


def build_report(paths: Iterable[str | Path], out: Path, title: str = "exssnet report",
                 echo: Callable[[str], None] | None = None) -> Path:
    """Read every results.json under `paths`, write figures, summary.csv and report.html into `out`.

    `echo`, when given, receives the comparison table as plain text.
    """
    groups = group_runs(load_runs(paths))
    if echo is not None:
        echo(text_table(groups, out))
        for group in groups:
            if group.duplicates:
                echo(f"warning: {group.label}: {group.duplicate_note}; only the first run of each seed is counted")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExssnetError(f"cannot create report folder {out}: {exc}") from None
    streams = settings(groups)
    sections = [setting_section(name, members, out) for name, members in streams.items()]
    write_summary_csv([g for members in streams.values() for g in members], out / SUMMARY_FILE)
    page = out / REPORT_FILE
    page.write_text(render_page(title, streams, sections, out), encoding="utf-8")
    return page
