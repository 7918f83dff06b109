import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from exssnet.cli import main


def test_tensorboard_scalars_match_the_run(tmp_path):
    args = ["run", "--benchmark", "split-digits", "--method", "ssnet", "--mask-epochs", "2", "--weight-epochs", "1",
            "--num-tasks", "2", "--threads", "1", "--quiet", "--tensorboard", "--no-log-csv", "--out", str(tmp_path)]
    assert main(args) == 0
    assert not (tmp_path / "metrics.csv").exists()
    results = json.loads((tmp_path / "results.json").read_text())
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"task0/mask/loss", "task0/mask/val_acc", "task1/weights/loss", "avg_acc_seen"} <= set(events.Tags()["scalars"])
    for t in range(2):
        mask = results["tasks"][t]["mask_phase"]
        assert [e.step for e in events.Scalars(f"task{t}/mask/loss")] == [1, 2]
        assert [e.value for e in events.Scalars(f"task{t}/mask/loss")] == pytest.approx(mask["loss"], rel=1e-6)
        assert [e.value for e in events.Scalars(f"task{t}/mask/val_acc")] == pytest.approx(mask["val_acc"], rel=1e-6)
        weights = results["tasks"][t]["weight_phase"]
        assert [e.value for e in events.Scalars(f"task{t}/weights/loss")] == pytest.approx(weights["loss"], rel=1e-6)
    seen = [e.value for e in events.Scalars("avg_acc_seen")]
    assert seen == pytest.approx(results["avg_acc_curve"], rel=1e-6)


def test_no_log_files_without_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--benchmark", "split-digits", "--mask-epochs", "1", "--weight-epochs", "0", "--num-tasks", "1",
                 "--threads", "1", "--quiet", "--tensorboard"]) == 0
    assert list(tmp_path.iterdir()) == []
