"""The documented figures benchmarks/check_docs.py can rerun quickly still match the documents (README, docs/)."""

from pathlib import Path

import pytest
from conftest import load_benchmark_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check_docs():
    return load_benchmark_script("check_docs")


def test_quick_documented_figures_have_not_drifted(check_docs, capsys):
    assert check_docs.main(["--fast"]) == 0, capsys.readouterr().out
    printed = capsys.readouterr().out
    assert printed.count("ok: ") == sum(f.fast for f in check_docs.FIGURES) >= 2


def test_a_drifted_or_missing_figure_fails(check_docs, tmp_path):
    (tmp_path / "doc.md").write_text("run it: `make x` gives 97.18 on this machine\n")
    figure = check_docs.DocFigure("x", "doc.md", r"`make x` gives (?P<acc>[0-9.]+)", "make x",
                                  lambda: {"acc": "97.20"}, fast=True)
    problems = check_docs.check(figure, root=tmp_path)
    assert problems == ["DRIFT doc.md: x acc: documented 97.18, now 97.20 (make x)"]
    same = check_docs.DocFigure("x", "doc.md", figure.pattern, "make x", lambda: {"acc": "97.18"}, fast=True)
    assert check_docs.check(same, root=tmp_path) == []
    (tmp_path / "doc.md").write_text("reworded\n")
    assert check_docs.check(figure, root=tmp_path)[0].startswith("NOT FOUND doc.md: x")


def test_every_check_names_a_command_written_in_its_document(check_docs):
    for figure in check_docs.FIGURES:
        text = " ".join((ROOT / figure.doc).read_text().split())
        assert figure.command in text, figure.name


def test_every_markdown_table_has_rows_under_its_header():
    """A header and separator row with no row under them is a stray (docs/text.md's task-order table had one)."""
    stray = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines[1:], 1):
            is_separator = line.startswith("|") and set(line) <= set("|-: ")
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if is_separator and lines[i - 1].startswith("|") and not following.startswith("|"):
                stray.append(f"{doc.name}:{i}")
    assert not stray
