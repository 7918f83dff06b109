"""A self-contained HTML page: inline CSS, PNGs embedded as base64 data URIs, no scripts."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from exssnet.report.aggregate import Group, Stat

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }
th { background: #eee; } td.text { text-align: left; }
figure { display: inline-block; margin: 0.5em; } figcaption { font-size: 0.85em; max-width: 640px; }
"""

COLUMNS = ["benchmark", "data", "model", "tasks", "method", "KKT", "density", "other settings", "seeds", "avg acc (%)", "forgetting",
           "sparse overlap", "time (s)"]


@dataclass
class Section:
    """A titled block of figures (caption, PNG path)."""

    title: str
    figures: list[tuple[str, Path]] = field(default_factory=list)


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _stat(stat: Stat | None, digits: int = 2) -> str:
    return "–" if stat is None else stat.format(digits)


def relative(path: str | Path, base: Path | None) -> str:
    """`path` relative to `base` (the report folder) when given, else as it is."""
    if base is None:
        return str(path)
    return os.path.relpath(Path(path).resolve(), base.resolve())


def data_cell(group: Group, base: Path | None) -> str:
    """Short data fingerprint and where the runs read it, e.g. `3fa2c1d0 (../data/mnist)` or `3fa2c1d0 (built-in)`."""
    places = ", ".join(relative(d, base) if d else "built-in" for d in group.data_dirs)
    return f"{group.key.data[:8] or '?'} ({places})"


def table_rows(groups: list[Group], base: Path | None = None) -> list[list[str]]:
    """The comparison table as text cells, one row per group; data folders relative to `base`."""
    return [
        [g.key.benchmark, data_cell(g, base), g.key.model, str(g.key.num_tasks), g.key.method, "yes" if g.key.kkt else "no",
         f"{g.key.density:g}", " ".join(f"{k}={v}" for k, v in g.extra), ",".join(str(s) for s in g.seeds), _stat(g.avg_acc), _stat(g.forgetting),
         _stat(g.overlap, 3), _stat(g.total_time, 1)]
        for g in groups
    ]


def text_table(groups: list[Group], base: Path | None = None) -> str:
    """The comparison table as aligned plain text (for the terminal)."""
    rows = [COLUMNS, *table_rows(groups, base)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _table(header: list[str], rows: list[list[str]], text_columns: int) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="text">{escape(c)}</td>' if i < text_columns else f"<td>{escape(c)}</td>" for i, c in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_page(title: str, groups: list[Group], sections: list[Section], base: Path | None = None) -> str:
    """The whole page; paths are shown relative to `base` (the report folder)."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>",
        "<h2>Comparison of methods</h2>",
        "<p>Mean ± sample standard deviation over seeds. Average accuracy and forgetting as in the paper; "
        "sparse overlap is the mean over tasks after the first. Runs are grouped by the data they read "
        "(a fingerprint of its content, with the folder it came from), never by the benchmark name alone.</p>",
        _table(COLUMNS, table_rows(groups, base), text_columns=8),
    ]
    for section in sections:
        parts.append(f"<h2>{escape(section.title)}</h2>")
        for caption, png in section.figures:
            parts.append(f'<figure><img src="{data_uri(png)}" alt="{escape(caption)}" width="640">'
                         f"<figcaption>{escape(caption)}</figcaption></figure>")
    runs = [[relative(r.path, base), f"{r.data_fingerprint[:8] or '?'} ({relative(r.data_dir, base) if r.data_dir else 'built-in'})",
             str(r.results["seed"]), f"{r.results['avg_acc']:.2f}", f"{r.results['forgetting']:.2f}"]
            for g in groups for r in g.runs]
    parts += ["<h2>Runs</h2>", _table(["results file", "data", "seed", "avg acc (%)", "forgetting"], runs, text_columns=2),
              "</body></html>"]
    return "\n".join(parts)
