"""A self-contained HTML page: inline CSS, PNGs embedded as base64 data URIs, no scripts."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from exssnet.report.aggregate import Group, Stat
from exssnet.report.method_keys import reads

STYLE = """
body { font-family: sans-serif; margin: 1em 2em; color: #222; max-width: 100%; box-sizing: border-box; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; } td { white-space: nowrap; }
th { background: #eee; } td.text { text-align: left; }
figure { display: inline-block; margin: 0.5em; max-width: 100%; } figcaption { font-size: 0.85em; max-width: 640px; }
img { max-width: 100%; height: auto; }
nav ul { margin: 0.3em 0; } .warning { background: #fff3cd; border: 1px solid #e0c060; padding: 0.5em; }
"""

COLUMNS = ["benchmark", "data", "model", "tasks", "method", "KKT", "density", "other settings", "seeds",
           "avg acc, task id given (%)", "forgetting", "task inference (%)", "class-IL acc (%)", "sparse overlap",
           "time (s)", "duplicate runs (not pooled)"]
NOT_READ = "–"  # a setting the method does not read


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


def short_examples(examples: str) -> str:
    """A short name of the examples a run read: a text stream's `text-` key or a data fingerprint, 8 hex digits."""
    return examples[:13] if examples.startswith("text-") else examples[:8] or "?"


def data_cell(group: Group, base: Path | None) -> str:
    """Short data fingerprint and where the runs read it, e.g. `3fa2c1d0 (../data/mnist)` or `3fa2c1d0 (built-in)`."""
    places = ", ".join(relative(d, base) if d else "built-in" for d in group.data_dirs)
    return f"{group.key.data[:8] or '?'} ({places})"


def table_rows(groups: list[Group], base: Path | None = None) -> list[list[str]]:
    """The comparison table as text cells, one row per group; data folders relative to `base`."""
    return [
        [g.key.benchmark, data_cell(g, base), model_cell(g), str(g.key.num_tasks), g.key.method,
         ("yes" if g.key.kkt else "no") if reads(g.key.method, "kkt") else NOT_READ,
         NOT_READ if g.key.density is None else f"{g.key.density:g}", " ".join(f"{k}={v}" for k, v in g.extra),
         ",".join(str(s) for s in g.seeds), _stat(g.avg_acc), _stat(g.forgetting), _stat(g.task_inference),
         _stat(g.class_il_acc), _stat(g.overlap, 3), _stat(g.total_time, 1), g.duplicate_note]
        for g in groups
    ]


def model_cell(group: Group) -> str:
    """The model, or for a method that fine-tunes the text encoder the encoder it trains."""
    if group.key.model:
        return group.key.model
    encoders = sorted({str(r.config.get("encoder")) for r in group.runs if r.config.get("encoder")})
    return f"encoder {'/'.join(encoders)}" if encoders else NOT_READ


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
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def anchor(text: str) -> str:
    return "s-" + "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


def render_page(title: str, streams: dict[str, list[Group]], sections: list[Section], base: Path | None = None) -> str:
    """The whole page: contents, one comparison table per stream of examples, figures, runs; paths relative to `base`."""
    groups = [g for members in streams.values() for g in members]
    duplicated = [g for g in groups if g.duplicates]
    contents = [("Comparison of methods", anchor("comparison"), [(name, anchor("table " + name)) for name in streams])]
    if duplicated:
        contents.insert(0, ("Duplicate runs (not pooled)", anchor("duplicates"), []))
    contents += [(f"Figures: {s.title}", anchor("figures " + s.title), []) for s in sections] + [("Runs", anchor("runs"), [])]
    toc = "".join(f'<li><a href="#{a}">{escape(t)}</a>'
                  + ("<ul>" + "".join(f'<li><a href="#{sa}">{escape(st)}</a></li>' for st, sa in subs) + "</ul>" if subs else "")
                  + "</li>" for t, a, subs in contents)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>",
        f'<nav id="contents"><h2>Contents</h2><ul>{toc}</ul></nav>',
    ]
    if duplicated:
        items = "".join(f"<li>{escape(g.label)}: {escape(g.duplicate_note)}: "
                        + escape(", ".join(relative(r.path, base) for r in g.duplicates)) + " not counted</li>"
                        for g in duplicated)
        parts.append(f'<div class="warning" id="{anchor("duplicates")}"><h2>Duplicate runs (not pooled)</h2>'
                     "<p>The same seed was run more than once with the same settings. Only the first run (by path) of "
                     f"each seed counts; averaging the others would count one seed as several.</p><ul>{items}</ul></div>")
    parts += [
        f'<h2 id="{anchor("comparison")}">Comparison of methods</h2>',
        "<p>Mean ± sample standard deviation over seeds (one run per seed). Average accuracy and forgetting as in the "
        "paper, with the task id given; class-IL runs also show the task-inference accuracy and the accuracy with the "
        "inferred task id. Sparse overlap is the mean over tasks after the first. Runs are grouped by the examples "
        "they read (a fingerprint of the data's content, with the folder it came from; for text streams the tasks, "
        "their sizes and the sampling seed, so token-input and feature-input runs share a table), never by the "
        "benchmark name alone; only the settings a method reads are shown (–: not read). Runs that differ in any "
        "recorded setting but the seed and where they ran (the world size included) are separate rows.</p>",
    ]
    for name, members in streams.items():
        parts.append(f'<h3 id="{anchor("table " + name)}">{escape(name)}</h3>')
        parts.append(_table(COLUMNS, table_rows(members, base), text_columns=8))
    for section in sections:
        parts.append(f'<h2 id="{anchor("figures " + section.title)}">Figures: {escape(section.title)}</h2>')
        for caption, png in section.figures:
            parts.append(f'<figure><img src="{data_uri(png)}" alt="{escape(caption)}" width="640" height="480">'
                         f"<figcaption>{escape(caption)}</figcaption></figure>")
    runs = [[relative(r.path, base), f"{r.data_fingerprint[:8] or '?'} ({relative(r.data_dir, base) if r.data_dir else 'built-in'})",
             str(r.results["seed"]), str(r.world_size), f"{r.results['avg_acc']:.2f}", f"{r.results['forgetting']:.2f}",
             "duplicate, not counted" if r in g.duplicates else "counted"]
            for g in groups for r in sorted([*g.runs, *g.duplicates], key=lambda r: r.path.parts)]
    parts += [f'<h2 id="{anchor("runs")}">Runs</h2>',
              _table(["results file", "data", "seed", "processes", "avg acc (%)", "forgetting", "in the table"], runs,
                     text_columns=2),
              "</body></html>"]
    return "\n".join(parts)
