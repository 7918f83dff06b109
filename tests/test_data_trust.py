"""Data options a run must obey or refuse: text task orders, image sizes, ImageNet val folders, unreadable images."""

from __future__ import annotations

import json

from text_fixtures import write_glove_txt, write_offline_sources

from exssnet.cli import main

FAST = ["--mask-epochs", "1", "--weight-epochs", "1", "--batch-size", "8", "--threads", "1", "--quiet"]


# ----- text-offline obeys --text-order ---------------------------------------------------------------
def test_text_offline_learns_the_requested_order_or_refuses_a_preset(tmp_path, capsys):
    data = write_offline_sources(tmp_path / "text", per_class=6)
    glove = write_glove_txt(tmp_path / "glove.txt")
    args = ["run", "--benchmark", "text-offline", "--data-dir", str(data), "--encoder", str(glove), "--model", "kim-cnn",
            "--text-max-train", "4", "--text-max-test", "2", *FAST]
    assert main([*args, "--text-order", "spam,vader-movie", "--out", str(tmp_path / "o")]) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["task_names"] == ["spam", "vader-movie"] and len(results["acc_matrix"]) == 2
    assert results["config"]["text_order"] == "spam,vader-movie"
    assert list(results["benchmark_info"]["task_sizes"]) == ["spam", "vader-movie"]
    capsys.readouterr()
    assert main([*args, "--text-order", "S2", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "task order S2 is a webnlp order" in err and "vader-movie" in err and not (tmp_path / "p" / "results.json").exists()
