"""The WSN Table 1 (Permuted MNIST) presets share WSN's protocol; only the method and its phase split differ."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_benchmark_script

from exssnet.run.config import RunConfig, load_yaml

PRESETS = sorted((Path(__file__).parents[1] / "configs").glob("wsn-t1-pmnist-*.yaml"))
DENSE = {"naive", "ewc", "individual", "joint", "cgate"}


def test_every_table_row_that_exists_here_has_a_preset():
    names = {p.stem.removeprefix("wsn-t1-pmnist-") for p in PRESETS}
    assert {"naive", "ewc", "individual", "joint", "supsup", "ssnet", "exssnet", "exssnet-kkt", "cgate", "packnet",
            "wsn-c0.03", "wsn-c0.05", "wsn-c0.1", "wsn-c0.3", "wsn-c0.5"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_follows_wsns_protocol(preset):
    config = RunConfig.from_dict(load_yaml(preset))
    assert (config.benchmark, config.model, config.num_tasks, config.classes_per_task) == ("permuted-mnist", "mlp", 10, 10)
    assert (config.batch_size, config.val_fraction, config.keep_best_epoch, config.lr_schedule) == (10, 0.1, True, "constant")
    if config.method in DENSE:
        settings = config.settings_of()
        assert settings.baseline_epochs == 5
        if config.method in ("ewc", "naive", "joint"):  # WSN's EWC: plain SGD at 0.03, lambda 1000; FINETUNE:
            # GPM's plain SGD 0.01; MTL: SGD at the rate chosen on validation, 0.01 (docs/wsn.md)
            lr = 0.03 if config.method == "ewc" else 0.01
            assert (settings.baseline_optimizer, settings.baseline_lr) == ("sgd", lr)
            assert config.method != "ewc" or (settings.ewc_lambda, settings.ewc_merge, settings.ewc_fisher_batch,
                                              settings.ewc_fisher_examples) == (1000.0, "mean", 20, 0)
        else:
            assert (settings.baseline_optimizer, settings.baseline_lr) == ("adam", 0.001)
    elif preset.stem.endswith("-5x5"):
        assert (config.mask_epochs, config.weight_epochs) == (5, 5)  # the documented double-budget variant
    elif config.method == "supsup":
        assert config.mask_epochs == 5
    elif config.method == "wsn":  # one joint phase at WSN's Adam lr 0.001, capacity c = density
        assert (config.mask_epochs, config.weight_epochs, config.mask_lr) == (5, 0, 0.001)
        assert preset.stem.endswith(f"-c{config.density}")
    elif config.method == "packnet":  # 5 epochs of the free weights, then prune to 1/10 and retrain 2 epochs
        assert (config.mask_epochs, config.weight_epochs, config.weight_lr) == (0, 5, 0.001)
        settings = config.settings_of()
        assert (settings.packnet_keep, settings.packnet_retrain_epochs) == (0.0, -1)
    else:
        assert config.mask_epochs + config.weight_epochs == 5  # equal budget: 3 mask + 2 weight epochs
    if preset.stem.endswith("-kkt"):
        assert config.settings_of().kkt is True


def test_validation_study_variants_are_valid_runs_on_the_validation_split():
    study = load_benchmark_script("wsn_val_study")
    for variant, (preset, settings) in study.VARIANTS.items():
        values = {**load_yaml(study.CONFIGS / f"{study.PREFIX}{preset}.yaml"), **settings, "eval_split": "val"}
        config = RunConfig.from_dict(values)  # every key is a setting the preset's method reads
        assert settings and all(config.to_dict()[k] == v for k, v in settings.items()), variant
    assert len({(p, tuple(sorted(c.items()))) for p, c in study.VARIANTS.values()}) == len(study.VARIANTS)  # no repeat
