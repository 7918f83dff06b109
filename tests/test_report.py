import base64
import csv
import io
import json
import re

import pytest
from PIL import Image

from exssnet.cli import main
from exssnet.report import build_report, group_runs, load_runs
from exssnet.report.figures import FIG_PIXELS

FAST = ["--benchmark", "split-digits", "--density", "0.2", "--mask-epochs", "2", "--weight-epochs", "2", "--quiet",
        "--threads", "1"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real few-second ExSSNeT run on split digits."""
    out = tmp_path_factory.mktemp("run")
    assert main(["run", *FAST, "--method", "exssnet", "--out", str(out)]) == 0
    return out


def test_report_of_a_real_run(real_run, tmp_path, capsys):
    results = json.loads((real_run / "results.json").read_text())
    assert main(["report", str(real_run), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "report written to" in printed
    fingerprint = results["benchmark_info"]["data_fingerprint"][:8]
    assert re.search(rf"split-digits\s+{fingerprint} \(built-in\)\s+lenet\s+5\s+exssnet\s+no\s+0.2\s+0\s+{results['avg_acc']:.2f}",
                     printed)
    page = (tmp_path / "report.html").read_text()
    assert "<table>" in page and "Comparison of methods" in page
    row = re.search(r"<tr><td class=\"text\">split-digits</td>.*?</tr>", page)
    assert row and f"<td>{results['avg_acc']:.2f}</td>" in row.group(0) and ">exssnet<" in row.group(0)
    assert "<script" not in page and "<link" not in page and 'src="http' not in page
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(embedded) == len(pngs) >= 3
    for data in embedded:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "PNG" and image.size == FIG_PIXELS
    heatmap = next(tmp_path.glob("acc_matrix_*.png"))
    with Image.open(heatmap) as image:
        image.verify()
    with Image.open(heatmap) as image:
        assert image.format == "PNG" and image.size == FIG_PIXELS == (640, 480)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # a drawn figure, not a blank canvas
    summary = list(csv.reader((tmp_path / "summary.csv").open()))
    assert summary[1][:8] == ["split-digits", f"{fingerprint} (built-in)", "lenet", "5", "exssnet", "no", "0.2", ""]
    assert summary[1][9] == f"{results['avg_acc']:.2f}"


def test_epoch_log_matches_the_run(real_run):
    results = json.loads((real_run / "results.json").read_text())
    rows = list(csv.DictReader((real_run / "metrics.csv").open()))
    assert list(rows[0]) == ["task", "phase", "epoch", "loss", "val_acc"]
    assert len(rows) == 5 * (2 + 2)
    for t, record in enumerate(results["tasks"]):
        for phase, key in (("mask", "mask_phase"), ("weights", "weight_phase")):
            logged = [r for r in rows if r["task"] == str(t) and r["phase"] == phase]
            assert [int(r["epoch"]) for r in logged] == [1, 2]
            assert [float(r["loss"]) for r in logged] == pytest.approx(record[key]["loss"])
            assert [float(r["val_acc"]) for r in logged] == pytest.approx(record[key]["val_acc"])


def _fake_results(path, method, density, seed, avg, forgetting=0.0, overlap=(0.0, 0.5), **config):
    path.mkdir(parents=True)
    acc = [[avg, None], [avg, avg]]
    data = {"method": method, "benchmark": "toy", "model": "lenet", "density": density, "seed": seed,
            "acc_matrix": acc, "avg_acc": avg, "forgetting": forgetting, "sparse_overlap": list(overlap),
            "config": {"method": method, "density": density, "seed": seed, **config}}
    (path / "results.json").write_text(json.dumps(data))


def test_groups_average_over_seeds(tmp_path):
    _fake_results(tmp_path / "a", "exssnet", 0.1, 0, 90.0, overlap=(0.0, 0.2))
    _fake_results(tmp_path / "b", "exssnet", 0.1, 1, 94.0, overlap=(0.0, 0.4))
    _fake_results(tmp_path / "c", "supsup", 0.1, 0, 80.0, forgetting=1.5)
    _fake_results(tmp_path / "d" / "deep", "exssnet", 0.05, 0, 70.0, kkt=True)
    groups = group_runs(load_runs([tmp_path]))
    labels = [g.label for g in groups]
    assert labels == ["exssnet d=0.1", "exssnet+kkt d=0.05", "supsup d=0.1"]
    exs = groups[0]
    assert exs.seeds == [0, 1]
    assert exs.avg_acc.mean == pytest.approx(92.0) and exs.avg_acc.std == pytest.approx(8 ** 0.5)
    assert exs.overlap.mean == pytest.approx(0.3)
    assert exs.curve[0] == pytest.approx([92.0, 92.0])
    assert exs.acc_matrix == [[92.0, None], [92.0, 92.0]]
    assert groups[2].forgetting.format() == "1.50"
    assert exs.avg_acc.format() == "92.00 ± 2.83"


def test_runs_that_differ_in_more_than_the_seed_are_kept_apart(tmp_path):
    _fake_results(tmp_path / "a", "exssnet", 0.1, 0, 90.0, kkt=True, kkt_k=5)
    _fake_results(tmp_path / "b", "exssnet", 0.1, 1, 94.0, kkt=True, kkt_k=5, threads=1)
    _fake_results(tmp_path / "c", "exssnet", 0.1, 0, 80.0, kkt=True, kkt_k=20)
    groups = group_runs(load_runs([tmp_path]))
    assert [(g.label, g.seeds) for g in groups] == [("exssnet+kkt d=0.1 kkt_k=20", [0]),
                                                    ("exssnet+kkt d=0.1 kkt_k=5", [0, 1])]
    page = build_report([tmp_path], tmp_path / "rep").read_text()
    assert "92.00 ± 2.83" in page and "kkt_k=20" in page


def test_wsn_runs_at_different_capacities_and_packnet_weight_rates_are_kept_apart(tmp_path):
    _fake_results(tmp_path / "a", "wsn", 0.1, 0, 96.0)
    _fake_results(tmp_path / "b", "wsn", 0.3, 0, 97.0)
    _fake_results(tmp_path / "c", "packnet", 0.1, 0, 95.0, weight_lr=0.001)
    _fake_results(tmp_path / "d", "packnet", 0.1, 0, 94.0, weight_lr=0.01)
    _fake_results(tmp_path / "e", "packnet", 0.3, 1, 93.0, weight_lr=0.01)  # density: packnet does not read it
    groups = group_runs(load_runs([tmp_path]))
    assert sorted((g.label, g.seeds) for g in groups) == [("packnet weight_lr=0.001", [0]), ("packnet weight_lr=0.01", [0, 1]),
                                                         ("wsn d=0.1", [0]), ("wsn d=0.3", [0])]


@pytest.mark.parametrize(
    "content, message",
    [(None, "does not exist"), ("", "no results.json found"), ("{not json", "is not valid JSON"),
     ('{"method": "x"}', "missing benchmark"),
     ('{"method": "m", "benchmark": "b", "density": 0.1, "seed": 0, "avg_acc": 1, "forgetting": 0, '
      '"acc_matrix": [[1, null], [null, 2]]}', "must be numbers")],
)
def test_bad_report_input_is_a_clear_error(tmp_path, capsys, content, message):
    target = tmp_path / "in"
    if content is not None:
        target.mkdir()
        if content:
            (target / "results.json").write_text(content)
    assert main(["report", str(target), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("exssnet: error:") and message in err and "Traceback" not in err


def test_runs_on_different_data_under_one_benchmark_name_are_kept_apart(tmp_path):
    def fake(path, seed, avg, fingerprint, data_dir):
        _fake_results(path, "exssnet", 0.1, seed, avg, data_dir=data_dir)
        results = json.loads((path / "results.json").read_text())
        results["benchmark_info"] = {"data_fingerprint": fingerprint, "data_dir": data_dir}
        (path / "results.json").write_text(json.dumps(results))

    mnist, other = tmp_path / "data" / "mnist", tmp_path / "data" / "other"
    fake(tmp_path / "runs" / "a", 0, 90.0, "aaaa1111" * 3, str(mnist))
    fake(tmp_path / "runs" / "b", 1, 94.0, "aaaa1111" * 3, str(tmp_path / "copy-of-mnist"))  # same data, another folder
    fake(tmp_path / "runs" / "c", 0, 40.0, "bbbb2222" * 3, str(other))
    groups = group_runs(load_runs([tmp_path / "runs"]))
    assert [(g.key.data[:8], g.seeds) for g in groups] == [("aaaa1111", [0, 1]), ("bbbb2222", [0])]
    page = build_report([tmp_path / "runs"], tmp_path / "report").read_text()
    assert "92.00 ± 2.83" in page and "40.00" in page
    assert "aaaa1111 (../copy-of-mnist, ../data/mnist)" in page and "bbbb2222 (../data/other)" in page
    assert str(tmp_path) not in page  # every path is relative to the report
    assert "../runs/a/results.json" in page
    summary = (tmp_path / "report" / "summary.csv").read_text()
    assert "bbbb2222 (../data/other)" in summary
    assert "toy, data aaaa1111, lenet, 2 tasks" in page and "toy, data bbbb2222, lenet, 2 tasks" in page


def test_accuracy_axis_spans_at_least_ten_points():
    from matplotlib.figure import Figure

    from exssnet.report.figures import MIN_ACC_SPAN, accuracy_axis

    for values, inside in (([97.1, 97.4], (97.1, 97.4)), ([99.8, 99.9], (99.8, 100.0)), ([0.2, 0.5], (0.0, 0.5)),
                           ([40.0, 90.0], (40.0, 90.0))):
        ax = Figure().add_subplot()
        accuracy_axis(ax, values)
        low, high = ax.get_ylim()
        assert high - low >= MIN_ACC_SPAN and low >= 0.0 and high <= 105.0
        assert low <= inside[0] and high >= inside[1]


def _text_run(path, method, seed, avg, inputs, fingerprint, **config):
    """A fake text-offline run: token-input (language method) or feature-input (exssnet) on one stream."""
    _fake_results(path, method, 0.1, seed, avg, overlap=(0.0, 0.3) if method == "exssnet" else (), encoder="minilm",
                  **config)
    results = json.loads((path / "results.json").read_text())
    results["benchmark"] = "text-offline"
    results["task_names"] = ["vader-movie", "spam"]
    results["sparse_overlap"] = results["sparse_overlap"] or None
    results["benchmark_info"] = {"data_fingerprint": fingerprint, "encoder": "minilm", "max_length": 64,
                                 "sample_seed": 1234, "task_sizes": {"vader-movie": {"train": 400, "test": 200},
                                                                     "spam": {"train": 400, "test": 200}},
                                 **({"inputs": "tokens"} if inputs == "tokens" else {})}
    (path / "results.json").write_text(json.dumps(results))


def test_token_and_feature_runs_on_one_stream_share_a_table_without_unread_settings(tmp_path):
    _text_run(tmp_path / "exs", "exssnet", 0, 82.0, "features", "f" * 24)
    _text_run(tmp_path / "ft0", "ft", 0, 70.0, "tokens", "a" * 24, kkt_k=10)
    _text_run(tmp_path / "ft1", "ft", 1, 72.0, "tokens", "a" * 24, kkt_k=20)  # a key ft does not read: not a split
    groups = group_runs(load_runs([tmp_path]))
    assert len({g.key.examples for g in groups}) == 1  # one stream, whatever form the inputs took
    ft = next(g for g in groups if g.key.method == "ft")
    assert ft.seeds == [0, 1] and ft.label == "ft" and ft.key.model == "" and ft.key.density is None
    build_report([tmp_path], tmp_path / "rep")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("<h3 ") == 1  # one comparison table for the stream
    assert "acc_vs_density" not in " ".join(p.name for p in (tmp_path / "rep").glob("*.png"))
    rows = {r["method"]: r for r in csv.DictReader((tmp_path / "rep" / "summary.csv").open())}
    assert rows["ft"]["model"] == "encoder minilm" and rows["ft"]["density"] == "–" and rows["ft"]["KKT"] == "–"
    assert rows["exssnet"]["model"] == "lenet" and rows["exssnet"]["density"] == "0.1"
    curve = next((tmp_path / "rep").glob("avg_acc_curve_*.png"))
    assert "text-offline" in curve.name  # one plot for both


def test_world_size_and_duplicate_seeds_are_never_pooled(tmp_path):
    _fake_results(tmp_path / "a", "exssnet", 0.1, 0, 90.0)
    _fake_results(tmp_path / "b", "exssnet", 0.1, 0, 80.0, world_size=2)  # in config, as runs write it today
    _fake_results(tmp_path / "c", "exssnet", 0.1, 0, 70.0)
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    results["environment"] = {"world_size": 2}  # where it may move
    (tmp_path / "c" / "results.json").write_text(json.dumps(results))
    _fake_results(tmp_path / "d", "exssnet", 0.1, 0, 90.0)  # the same seed and settings again
    groups = group_runs(load_runs([tmp_path]))
    assert [(g.extra, g.seeds, g.avg_acc.mean, len(g.duplicates)) for g in groups] == [
        ((("world_size", "1"),), [0], 90.0, 1), ((("world_size", "2"),), [0], 80.0, 1)]
    assert groups[0].duplicate_note == "seed 0: 2 runs (same accuracies)"
    assert groups[1].duplicate_note == "seed 0: 2 runs (different accuracies)"
    lines = []
    build_report([tmp_path], tmp_path / "rep", echo=lines.append)
    assert any(line.startswith("warning: exssnet d=0.1 world_size=2: seed 0: 2 runs") for line in lines)


def test_class_il_columns_in_summary(tmp_path):
    _fake_results(tmp_path / "a", "supsup", 0.1, 0, 97.0, scenario="class-il")
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    results["class_il"] = {"avg_task_inference_acc": 88.5, "avg_inferred_acc": 84.25}
    (tmp_path / "a" / "results.json").write_text(json.dumps(results))
    build_report([tmp_path], tmp_path / "rep")
    row = next(csv.DictReader((tmp_path / "rep" / "summary.csv").open()))
    assert row["task inference (%)"] == "88.50" and row["class-IL acc (%)"] == "84.25"
    assert row["avg acc, task id given (%)"] == "97.00"
