"""`exssnet report DIR...`: an HTML page, PNG figures and summary.csv from results.json files."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "render an HTML report and PNG figures from one or more results.json (files or folders)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="DIR", help="results.json files or folders searched recursively")
    parser.add_argument("--out", type=Path, help="report folder (default: DIR/report for the first DIR)")
    parser.add_argument("--title", default="exssnet report", help="page title")


def default_out(first: Path) -> Path:
    return (first if first.is_dir() else first.parent) / "report"


def execute(args: argparse.Namespace) -> int:
    from exssnet.report import build_report

    out = args.out or default_out(Path(args.paths[0]))
    page = build_report(args.paths, out, title=args.title, echo=print)
    print(f"report written to {page}")
    return 0
