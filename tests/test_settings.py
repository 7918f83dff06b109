"""Settings know their role and their method: one comparison of configs, and no setting a run silently ignores."""

from __future__ import annotations

import dataclasses
import json

import pytest

from exssnet.cli import main
from exssnet.errors import ExssnetError
from exssnet.methods import method_names, method_settings_class
from exssnet.methods.language import LANGUAGE_METHODS
from exssnet.run.config import Purpose, RunConfig, config_diff, core_keys, incidental_keys, resume_free_keys
from exssnet.run.files import INCIDENTAL_KEYS
from exssnet.run.runner import run_experiment
from exssnet.settings import CoreSettings, Role, role_of


def one_error(args: list[str], capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("exssnet: error:") and len(err.strip().splitlines()) == 1, err
    return err


def test_a_setting_of_another_method_is_refused_naming_its_methods(capsys, tmp_path):
    err = one_error(["run", "--method", "exssnet", "--ewc-lambda", "5", "--out", str(tmp_path / "o")], capsys)
    assert "'exssnet' does not read --ewc-lambda 5.0 (read by ewc, online-ewc)" in err
    assert not (tmp_path / "o").exists()  # refused before anything is written
    assert "read by mbpa)" in one_error(["run", "--method", "ft", "--mbpa-steps", "3"], capsys)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("method: supsup\nder-alpha: 0.9\n")
    assert "--der-alpha 0.9 (read by der, derpp)" in one_error(["run", "--config", str(yaml_file)], capsys)


def test_a_default_value_of_another_methods_setting_is_accepted_and_not_recorded():
    config = RunConfig.from_dict({"method": "exssnet", "ewc_lambda": 100.0, "kkt": True})
    assert "ewc_lambda" not in config.to_dict() and config.to_dict()["kkt"] is True


@pytest.mark.parametrize("method", method_names())
def test_recorded_config_is_the_core_and_the_methods_own_settings(method):
    own = {f.name for f in dataclasses.fields(method_settings_class(method))}
    assert set(RunConfig.from_dict({"method": method}).to_dict()) == core_keys() | own


def test_language_methods_do_not_share_settings_they_do_not_read():
    keys = {m: {f.name for f in dataclasses.fields(method_settings_class(m))} for m in LANGUAGE_METHODS}
    assert not keys["ft"] & {"mbpa_steps", "adapter_size", "prompt_tokens", "buffer_size", "lamol_lm"}
    assert "prompt_tokens" in keys["prompt-tuning"] and "adapter_size" not in keys["prompt-tuning"]
    assert {m for m, k in keys.items() if "mbpa_steps" in k} == {"mbpa"}
    assert {m for m, k in keys.items() if "buffer_size" in k} == {"replay", "regularization", "adaptbert-replay",
                                                                  "mbpa", "idbr"}


def test_roles_are_declared_on_the_fields():
    roles = {f.name: role_of(f) for f in dataclasses.fields(CoreSettings)}
    assert roles["threads"] is Role.RESUME_FREE and roles["device"] is Role.INCIDENTAL and roles["density"] is Role.RESULT
    assert resume_free_keys() == {"threads", "workers"}
    assert incidental_keys() == INCIDENTAL_KEYS == {"data_dir", "device", "threads", "deterministic", "log_csv",
                                                    "tensorboard", "workers"}


def test_config_diff_leaves_out_the_roles_its_purpose_ignores():
    saved = RunConfig.from_dict({"method": "exssnet"}).to_dict()
    changed = {**saved, "threads": 3, "device": "cuda", "density": 0.5}
    assert [d.key for d in config_diff(saved, changed, Purpose.COMPLETE)] == ["density", "device", "threads"]
    assert [d.key for d in config_diff(saved, changed, Purpose.RESUME)] == ["density", "device"]
    assert [str(d) for d in config_diff(saved, changed, Purpose.SKIP)] == ["density: 0.1 -> 0.5"]
    # a key one side lacks had its default; keys that are no setting (an older results.json's world_size) are ignored
    older = {k: v for k, v in saved.items() if k != "kkt_k"} | {"world_size": 2, "ewc_lambda": 100.0}
    assert config_diff(older, saved, Purpose.COMPLETE) == []
    assert [d.key for d in config_diff({**older, "ewc_lambda": 5.0}, saved, Purpose.COMPLETE)] == ["ewc_lambda"]


def test_results_record_world_size_in_the_environment_and_only_own_settings(tmp_path):
    config = RunConfig.from_dict({"benchmark": "split-digits", "method": "exssnet", "num_tasks": 2, "mask_epochs": 1,
                                  "weight_epochs": 1, "density": 0.2})
    run_experiment(config, out=tmp_path, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["environment"]["world_size"] == 1 and "world_size" not in results["config"]
    assert set(results["config"]) == core_keys() | {f.name for f in dataclasses.fields(method_settings_class("exssnet"))}
    with pytest.raises(ExssnetError, match="already complete"):
        run_experiment(config, out=tmp_path, progress=False, resume=True)  # the completeness check reads config_diff


def test_from_dict_refuses_an_unknown_key_in_one_line_with_a_hint():
    """The Python API's error is the CLI's: one line naming the close key, never the list of every key."""
    with pytest.raises(ExssnetError) as info:
        RunConfig.from_dict({"desnity": 0.2})
    assert str(info.value) == "unknown config key(s) desnity; did you mean 'density'?"
    with pytest.raises(ExssnetError) as info:
        RunConfig.from_dict({"zzz": 1, "mask_epoch": 2})
    message = str(info.value)
    assert "\n" not in message and "mask_epoch: did you mean 'mask_epochs'?" in message
    assert "classil_rule" not in message and len(message) < 200


def test_a_foreign_setting_names_only_the_methods_that_accept_its_value():
    with pytest.raises(ExssnetError) as shared:
        RunConfig.from_dict({"method": "supsup", "baseline_head": "shared"})
    readers = shared.value.args[0].split("(read by ")[1].split(")")[0].split(", ")
    assert "er" in readers and "joint" in readers
    assert not set(readers) & set(LANGUAGE_METHODS)  # they read baseline_head but refuse 'shared'
    with pytest.raises(ExssnetError, match="none of which accepts this value"):
        RunConfig.from_dict({"method": "supsup", "baseline_head": "nonsense"})
