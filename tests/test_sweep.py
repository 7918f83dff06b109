import csv
import json
import os
import signal
import time

import pytest

from exssnet.cli import main
from exssnet.errors import ExssnetError
from exssnet.run.config import RunConfig
from exssnet.run.parallel_sweep import run_processes
from exssnet.run.runner import run_experiment
from exssnet.run.sweep import SweepCellsFailed, cell_config, make_grid, run_sweep

BASE = ["--benchmark", "split-digits", "--mask-epochs", "1", "--weight-epochs", "1", "--num-tasks", "3",
        "--threads", "1", "--quiet"]


def test_sweep_runs_grid_and_reports(tmp_path, capsys):
    args = ["sweep", *BASE, "--methods", "supsup,exssnet", "--densities", "0.1,0.3", "--seeds", "0", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "4 run, 0 already done" in capsys.readouterr().out
    cells = sorted(p.parent.name for p in tmp_path.glob("*/results.json"))
    assert cells == ["exssnet-d0.1-s0", "exssnet-d0.3-s0", "supsup-d0.1-s0", "supsup-d0.3-s0"]
    results = json.loads((tmp_path / "exssnet-d0.3-s0" / "results.json").read_text())
    assert results["method"] == "exssnet" and results["density"] == 0.3 and len(results["acc_matrix"]) == 3
    report = tmp_path / "report"
    assert (report / "acc_vs_density_split-digits-lenet-3-tasks.png").is_file()
    assert (report / "acc_vs_overlap_split-digits-lenet-3-tasks.png").is_file()
    rows = list(csv.DictReader((report / "summary.csv").open()))
    assert [(r["method"], r["density"]) for r in rows] == [("exssnet", "0.1"), ("exssnet", "0.3"),
                                                         ("supsup", "0.1"), ("supsup", "0.3")]
    # a rerun finds every cell done and runs nothing
    assert main(args) == 0
    assert "0 run, 4 already done" in capsys.readouterr().out


def test_sweep_resumes_only_missing_cells(tmp_path):
    base = RunConfig(benchmark="split-digits", mask_epochs=1, weight_epochs=0, num_tasks=2, threads=1)
    cells = make_grid(["supsup"], [0.2], [0, 1, 2])
    calls = []

    def counting_run(config, **kwargs):
        calls.append(config.seed)
        return run_experiment(config, **kwargs)

    assert run_sweep(base, cells, tmp_path, progress=False, run=counting_run)["ran"] == [c.name for c in cells]
    (tmp_path / "supsup-d0.2-s1" / "results.json").unlink()
    calls.clear()
    done = run_sweep(base, cells, tmp_path, progress=False, run=counting_run)
    assert calls == [1] and done["skipped"] == ["supsup-d0.2-s0", "supsup-d0.2-s2"]
    changed = RunConfig(benchmark="split-digits", mask_epochs=3, weight_epochs=0, num_tasks=2, threads=1)
    with pytest.raises(ExssnetError, match="made with other settings .*mask_epochs 1 there vs 3 now"):
        run_sweep(changed, cells, tmp_path, progress=False)


@pytest.mark.parametrize(
    "extra, message",
    [(["--methods", "supsup,icarl"], "unknown method(s) icarl"),
     (["--densities", "0.1,1.5"], "density must be in (0, 1]")],
)
def test_bad_grid_fails_before_running(tmp_path, capsys, extra, message):
    assert main(["sweep", *BASE, *extra, "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "sw").exists()


def test_parallel_sweep_matches_the_sequential_one_and_reports_a_failed_cell(tmp_path, capsys):
    """Two cells in two processes: one equals its sequential run, the other fails; the first is kept."""
    base = RunConfig(benchmark="split-digits", mask_epochs=1, weight_epochs=1, num_tasks=2, threads=1)
    cells = make_grid(["exssnet"], [0.2], [0, 1])
    sequential = run_sweep(base, cells[:1], tmp_path / "seq", progress=False)
    assert sequential["ran"] == ["exssnet-d0.2-s0"]
    broken = tmp_path / "par" / "exssnet-d0.2-s1"
    broken.mkdir(parents=True)
    (broken / "run_state.json").write_text("not json")
    with pytest.raises(ExssnetError, match="1 of 2 sweep cells failed.*exssnet-d0.2-s1: "):
        run_sweep(base, cells, tmp_path / "par", progress=False, jobs=2)
    seq, par = (json.loads((tmp_path / d / "exssnet-d0.2-s0" / "results.json").read_text()) for d in ("seq", "par"))
    assert par["acc_matrix"] == seq["acc_matrix"]  # deterministic: the same numbers in a worker process
    assert par["config"]["threads"] == 1


def test_submitit_local_executor_resumes_a_cut_short_cell(tmp_path):
    pytest.importorskip("submitit")
    base = RunConfig(benchmark="split-digits", mask_epochs=1, weight_epochs=1, num_tasks=2, threads=1)
    cells = make_grid(["exssnet"], [0.2], [1])
    run_experiment(cell_config(base, cells[0]), out=tmp_path / cells[0].name, progress=False)
    first = json.loads((tmp_path / cells[0].name / "results.json").read_text())
    (tmp_path / cells[0].name / "results.json").unlink()  # as if the job died after its last checkpoint
    broken = make_grid(["exssnet"], [0.2], [2])[0]  # a second cell fails; the first is still resumed and kept
    (tmp_path / broken.name).mkdir()
    (tmp_path / broken.name / "run_state.json").write_text("not json")
    with pytest.raises(SweepCellsFailed, match="1 of 2 sweep cells failed.*exssnet-d0.2-s2: .*run_state.json") as caught:
        run_sweep(base, [*cells, broken], tmp_path, progress=False, executor="local", jobs=2)
    done = caught.value.done
    assert done["ran"] == [cells[0].name] and len(done["submitted"]) == 2 and (tmp_path / ".submitit").is_dir()
    resumed = json.loads((tmp_path / cells[0].name / "results.json").read_text())
    assert resumed["acc_matrix"] == first["acc_matrix"]
    assert [t["wall_time_s"] for t in resumed["tasks"]] == [t["wall_time_s"] for t in first["tasks"]]  # restored, not retrained


def test_sweep_jobs_flag_and_slurm_options_are_checked(tmp_path, capsys):
    assert main(["sweep", *BASE, "--jobs", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
    assert main(["sweep", *BASE, "--executor", "slurm", "--slurm", "partition", "--out", str(tmp_path / "b")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_sweep_under_torchrun_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["sweep", *BASE, "--out", str(tmp_path / "c")]) == 2
    assert "without torchrun" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_default_sweep_runs_every_cell_when_one_fails_and_names_it(tmp_path, capsys):
    """--jobs 1: the first cell fails (its run_state.json is corrupt), the second still runs; exit 2 names the cell."""
    out = tmp_path / "sw"
    (out / "supsup-d0.2-s0").mkdir(parents=True)
    (out / "supsup-d0.2-s0" / "run_state.json").write_text("not json")
    args = ["sweep", *BASE, "--num-tasks", "2", "--methods", "supsup", "--densities", "0.2", "--seeds", "0,1",
            "--no-report", "--out", str(out)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert (out / "supsup-d0.2-s1" / "results.json").is_file()  # the later cell ran
    assert "1 run, 0 already done, 1 failed" in captured.out
    error = [line for line in captured.err.splitlines() if line.startswith("exssnet: error:")]
    assert len(error) == 1 and "1 of 2 sweep cells failed" in error[0] and "supsup-d0.2-s0: " in error[0]
    assert "run_state.json" in error[0] and "Traceback" not in captured.err


def test_sweep_checks_every_cell_before_the_first_starts(tmp_path, capsys):
    """A language method on an image benchmark is refused before the (valid) first cell runs."""
    out = tmp_path / "sw"
    assert main(["sweep", *BASE, "--methods", "supsup,ft", "--seeds", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no cell was started" in err and "ft-d" in err and "text benchmark" in err and "Traceback" not in err
    assert not out.exists()  # not even the valid first cell ran
    assert main(["sweep", "--benchmark", "text-offline", "--model", "kim-cnn", "--text-order", "S2", "--methods", "supsup,exssnet",
                 "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no cell was started" in err and "supsup-d0.1-s0, exssnet-d0.1-s0: task order S2 is a webnlp order" in err
    assert not out.exists()


class KilledCell:
    """A cell whose process the kernel kills (as the out-of-memory killer does)."""

    def __call__(self) -> float:
        os.kill(os.getpid(), signal.SIGKILL)
        return 0.0


class SlowCell:
    def __call__(self) -> float:
        time.sleep(0.5)
        return 42.0


def test_a_killed_cell_process_is_named_and_the_others_finish():
    finished = {}
    failures = run_processes([("killed", KilledCell()), ("slow", SlowCell()), ("after", SlowCell())], 2,
                             lambda name, acc: finished.setdefault(name, acc))
    assert finished == {"slow": 42.0, "after": 42.0}
    assert list(failures) == ["killed"] and "SIGKILL" in failures["killed"]


def test_slurm_executor_errors_are_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    assert main(["sweep", *BASE, "--executor", "slurm", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("exssnet: error: --executor slurm needs Slurm") and len(err.splitlines()) == 1
    assert main(["sweep", *BASE, "--executor", "local", "--slurm", "slurm_partitoin=gpu", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "bad --slurm option" in err and "partitoin" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_setting_of_some_of_the_methods_goes_to_their_cells_only(tmp_path, capsys):
    """--ewc-lambda in a sweep of ewc and supsup: the ewc cells read it, the supsup cells run without it."""
    out = tmp_path / "sw"
    args = ["sweep", *BASE, "--num-tasks", "2", "--methods", "ewc,supsup", "--ewc-lambda", "5", "--no-report",
            "--out", str(out)]
    assert main(args) == 0
    assert "2 run, 0 already done" in capsys.readouterr().out
    ewc = json.loads((out / "ewc-d0.1-s0" / "results.json").read_text())["config"]
    supsup = json.loads((out / "supsup-d0.1-s0" / "results.json").read_text())["config"]
    assert ewc["ewc_lambda"] == 5.0 and "ewc_lambda" not in supsup
    # the Python API takes the same flat keys
    calls = []
    base = {"benchmark": "split-digits", "num_tasks": 2, "ewc_lambda": 7.0, "mask_epochs": 1}
    run_sweep(base, make_grid(["supsup", "ewc"], [0.1], [0]), tmp_path / "api", progress=False,
              run=lambda config, **kwargs: calls.append(config) or {"avg_acc": 0.0})
    assert [(c.method, c.settings_of().to_dict().get("ewc_lambda")) for c in calls] == [("supsup", None), ("ewc", 7.0)]


def test_a_setting_no_method_of_the_sweep_reads_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", *BASE, "--methods", "supsup,exssnet", "--ewc-lambda", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("exssnet: error: no method of this sweep (supsup, exssnet) reads --ewc-lambda 5.0 "
                          "(read by ewc, online-ewc)") and len(err.strip().splitlines()) == 1
    assert not out.exists()
    # a setting at its default value is no choice the user made: accepted
    with pytest.raises(ExssnetError, match="no method of this sweep"):
        run_sweep({"ewc_lambda": 5.0}, make_grid(["supsup"], [0.1], [0]), out, progress=False)
    run_sweep({"ewc_lambda": RunConfig(method="ewc").settings_of().ewc_lambda, "num_tasks": 1},
              make_grid(["supsup"], [0.1], [0]), out, progress=False, run=lambda config, **kwargs: {"avg_acc": 0.0})
