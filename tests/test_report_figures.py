"""The report's figures, read back from matplotlib's text boxes: no note or label over a title, no axis narrower
than the minimum span its note states."""

import json
import re

import pytest

from exssnet.report import figures, group_runs, load_runs
from exssnet.report.aggregate import series_by_method

NOTE = re.compile(r"([xy]) axis spans ([0-9.]+).*?\(at least ([0-9.]+)\)")
TITLE = "split-mnist, data 3fa2c1d0, lenet-bn, 5 tasks: a long title as the report writes it for a setting"


def fake(path, method, density, seed, avg, overlap):
    path.mkdir(parents=True)
    acc = [[avg, None], [avg - 0.05, avg + 0.05]]
    path.joinpath("results.json").write_text(json.dumps({
        "method": method, "benchmark": "toy", "model": "lenet", "density": density, "seed": seed, "acc_matrix": acc,
        "avg_acc": avg, "forgetting": 0.0, "sparse_overlap": [0.0, overlap],
        "config": {"method": method, "density": density, "seed": seed}}))


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    """Near-identical accuracies near 100 and sparse overlaps 0.0005 apart: what made axes zoom in."""
    root = tmp_path_factory.mktemp("runs")
    for i, (method, density) in enumerate([("exssnet", 0.1), ("exssnet", 0.05), ("supsup", 0.1), ("supsup", 0.05)]):
        for seed in (0, 1):
            fake(root / f"{i}-{seed}", method, density, seed, 99.6 + 0.01 * seed, 0.2800 + 0.0005 * (i % 2))
    return group_runs(load_runs([root]))


def drawn(groups):
    series = series_by_method(groups)
    yield figures.draw_accuracy_curves(groups, TITLE)
    yield figures.draw_overlap_per_task(groups, TITLE)
    yield figures.draw_accuracy_vs_density(series, TITLE)
    yield figures.draw_accuracy_vs_overlap(series, TITLE)
    yield figures.draw_accuracy_heatmap(groups[0], TITLE)


def overlaps(a, b) -> bool:
    return a.width > 0 and b.width > 0 and a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_no_text_overlaps_a_title_and_no_axis_is_narrower_than_stated(groups):
    checked_notes = set()
    for fig in drawn(groups):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            titles = [t.get_window_extent(renderer) for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()]
            for text in ax.texts:  # annotations, notes and value labels
                box = text.get_window_extent(renderer)
                assert not any(overlaps(box, title) for title in titles), (text.get_text(), box, titles)
                for axis, stated, minimum in NOTE.findall(text.get_text()):
                    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
                    assert high - low >= float(minimum) - 1e-9, (axis, low, high, minimum)
                    assert float(stated) == pytest.approx(high - low, rel=0.01, abs=0.05)
                    checked_notes.add((fig.axes[0].get_xlabel(), axis))
    # every accuracy axis and the overlap axis of the scatter state their minimum
    assert ("mean sparse overlap (tasks after the first)", "x") in checked_notes
    assert ("mean sparse overlap (tasks after the first)", "y") in checked_notes
    assert ("tasks learned", "y") in checked_notes


def test_overlap_axis_never_spans_less_than_its_minimum():
    from matplotlib.figure import Figure

    for values in ([0.2800, 0.2805], [0.0, 0.0001], [0.9999, 1.0], [0.1, 0.7]):
        ax = Figure().add_subplot()
        figures.overlap_axis(ax, values)
        low, high = ax.get_xlim()
        assert high - low >= figures.MIN_OVERLAP_SPAN and low >= 0.0 and high <= 1.0
        assert low <= min(values) and high >= max(values)
