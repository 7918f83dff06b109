"""Run configuration: one typed dataclass, loaded from YAML and/or CLI flags with strict checks."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exssnet.errors import ExssnetError, check_density


def setting(default: Any, help: str) -> Any:
    """A config field with its CLI help text (every field becomes a `--flag` of `exssnet run`)."""
    return field(default=default, metadata={"help": help})


# Integer settings that must be >= 1 when set (None means "default" where a field allows it).
AT_LEAST_ONE = (
    "batch_size", "eval_batch_size", "classes_per_task", "classil_batch_size", "num_tasks",
    "kkt_k", "kkt_batches", "kkt_batch_size", "buffer_size", "replay_batch_size", "agem_mem_batch",
    "text_max_train", "text_max_test", "encode_batch_size", "image_size",
)


@dataclass
class RunConfig:
    """Everything a continual-learning run needs; every field can be set in YAML or on the CLI."""

    benchmark: str = setting("split-mnist", "benchmark name, e.g. split-mnist, split-fashion-mnist, split-digits")
    method: str = setting("exssnet", "supsup, ssnet, exssnet, or a dense baseline: naive, ewc, online-ewc, si, lwf, agem, er, der, derpp, joint, individual")
    model: str = setting("lenet", "model name, e.g. lenet")
    density: float = setting(0.1, "fraction of weights each task's mask keeps, in (0, 1]")
    seed: int = setting(0, "random seed (class order, initialisation, data order)")
    device: str = setting("cpu", "cpu, cuda or cuda:N")
    num_tasks: int | None = setting(None, "use only the first N tasks")
    classes_per_task: int = setting(2, "classes per task")
    class_order: str = setting("seeded", "'seeded' permutation or 'sequential'")
    val_fraction: float = setting(0.1, "fraction of each task's training data held out for validation")
    data_dir: str | None = setting(None, "folder with the dataset files (standard formats)")
    batch_size: int = setting(128, "training batch size")
    eval_batch_size: int = setting(1024, "evaluation batch size")
    mask_epochs: int = setting(5, "epochs of the mask (scores) phase per task")
    weight_epochs: int = setting(5, "epochs of the weight phase per task (ssnet, exssnet)")
    mask_lr: float = setting(0.01, "Adam learning rate of the mask phase")
    weight_lr: float = setting(0.0005, "Adam learning rate of the weight phase")
    keep_scores: bool = setting(False, "keep finished tasks' float scores (default: only their packed masks)")
    deterministic: bool = setting(True, "use deterministic algorithms (bit-identical reruns on CPU)")
    threads: int | None = setting(None, "torch CPU threads")
    amp: str | None = setting(None, "automatic mixed precision: 'bf16' or 'fp16' (loss-scaled); unset: float32")
    channels_last: bool = setting(False, "convolutions in channels-last memory format (faster with CUDA tensor cores)")
    log_csv: bool = setting(True, "write per-epoch loss and validation accuracy to metrics.csv in the output folder")
    tensorboard: bool = setting(False, "write TensorBoard scalars to tensorboard/ in the output folder")
    scenario: str = setting("task-il", "'task-il' (task id given) or 'class-il' (also infer the task, SupSup one-shot)")
    classil_rule: str = setting("one-shot", "class-il task inference: SupSup 'one-shot' gradient, its iterative 'binary' halving, or brute-force 'min-entropy'")
    classil_mode: str = setting("example", "class-il task inference per 'example' (tasks shuffled together) or per 'batch' (one task per batch)")
    classil_bn: str = setting("batch", "BatchNorm while superposing: 'batch' statistics or 'mixture' of tasks' statistics")
    classil_batch_size: int = setting(128, "class-il inference batch (the batch that shares one task in mode 'batch')")
    classil_every_task: bool = setting(False, "class-il: evaluate after every task, not only after the last")
    # dense baselines (docs/baselines.md)
    baseline_epochs: int | None = setting(None, "baselines: epochs per task (default mask_epochs + weight_epochs)")
    baseline_lr: float = setting(0.001, "baselines: Adam learning rate")
    ewc_lambda: float = setting(100.0, "ewc, online-ewc: penalty strength")
    ewc_gamma: float = setting(1.0, "online-ewc: decay of the accumulated Fisher, in [0, 1]")
    si_c: float = setting(0.5, "si: penalty strength")
    si_xi: float = setting(0.001, "si: damping of the importance denominator, > 0")
    lwf_alpha: float = setting(1.0, "lwf: weight of the distillation loss")
    lwf_temperature: float = setting(2.0, "lwf: distillation temperature, > 0")
    buffer_size: int = setting(500, "er, der, derpp, agem: examples kept in the replay buffer (reservoir)")
    replay_batch_size: int = setting(64, "er, der, derpp: buffer examples replayed per step")
    der_alpha: float = setting(0.3, "der, derpp: weight of the logit-matching loss")
    der_beta: float = setting(0.5, "derpp: weight of the replayed-label loss")
    agem_mem_batch: int = setting(256, "agem: buffer examples in the reference gradient")
    # KKT (KNN-based knowledge transfer, docs/kkt.md)
    kkt: bool = setting(False, "KKT: start each task's scores from the earlier task whose features best KNN-classify it")
    kkt_k: int = setting(10, "KKT: neighbours of the KNN vote")
    kkt_batches: int = setting(10, "KKT: batches of the new task's training data to embed (2/3 fit, 1/3 scored)")
    kkt_batch_size: int = setting(64, "KKT: examples per batch")
    kkt_head: str = setting("copy", "KKT: 'copy' the source task's classifier scores too (the paper) or start the classifier 'fresh'")
    # ----- text benchmarks (text-offline, webnlp, glue); ignored by the others -----
    encoder: str = setting("minilm", "frozen token encoder: 'minilm' (offline default), 'glove-6b-50d', a GloVe .txt file, or a Hugging Face name/folder")
    max_length: int = setting(64, "tokens per text (longer texts are truncated) for the encoder")
    cache_dir: str | None = setting(None, "folder of cached encoder features (default: <data dir>/cache, data/text/cache)")
    text_max_train: int | None = setting(None, "training examples per class per task, sampled with a fixed seed (default: all; text-offline 200)")
    text_max_test: int | None = setting(None, "test examples per class per task, sampled with a fixed seed (default: all; text-offline 100)")
    text_order: str | None = setting(None, "task order: preset S1-S4 (webnlp), S5-S8 (glue), or comma-separated dataset names")
    encode_batch_size: int = setting(64, "batch size of the frozen encoder when features are computed")
    # ----- benchmarks streamed from image files (imagenet); ignored by the others -----
    image_size: int = setting(224, "imagenet: training crop and evaluation centre-crop size (eval resizes the short side to 8/7 of it first)")
    workers: int = setting(4, "imagenet: DataLoader worker processes that decode images (0: in the main process)")

    def __post_init__(self) -> None:
        _check_types(self)
        self.density = check_density(self.density)
        if self.scenario not in ("task-il", "class-il"):
            raise ExssnetError(f"scenario must be 'task-il' or 'class-il', got {self.scenario!r}")
        for name in AT_LEAST_ONE:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ExssnetError(f"{name} must be at least 1, got {value}")
        for name in ("mask_epochs", "weight_epochs"):
            if getattr(self, name) < 0:
                raise ExssnetError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("mask_lr", "weight_lr"):
            if not getattr(self, name) > 0:
                raise ExssnetError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ExssnetError(f"amp must be 'bf16' or 'fp16' (or unset for float32), got {self.amp!r}")
        if self.kkt_head not in ("copy", "fresh"):
            raise ExssnetError(f"kkt_head must be 'copy' or 'fresh', got {self.kkt_head!r}")
        if self.workers < 0:
            raise ExssnetError(f"workers must be >= 0, got {self.workers}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ExssnetError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        self._check_baseline_settings()
        self._check_text_settings()

    def _check_baseline_settings(self) -> None:
        if self.baseline_epochs is not None and self.baseline_epochs < 0:
            raise ExssnetError(f"baseline_epochs must be >= 0, got {self.baseline_epochs}")
        for name in ("baseline_lr", "si_xi", "lwf_temperature"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ExssnetError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        for name in ("ewc_lambda", "si_c", "lwf_alpha", "der_alpha", "der_beta"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ExssnetError(f"{name} must be a finite number >= 0 (a loss weight), got {getattr(self, name)}")
        if not 0.0 <= self.ewc_gamma <= 1.0:
            raise ExssnetError(f"ewc_gamma must be in [0, 1] (the Fisher decay), got {self.ewc_gamma}")

    @property
    def epochs_per_task(self) -> int:
        """Epochs a dense baseline trains each task: the same total as a supermask method by default."""
        return self.mask_epochs + self.weight_epochs if self.baseline_epochs is None else self.baseline_epochs

    def _check_text_settings(self) -> None:
        if not self.encoder.strip():
            raise ExssnetError("encoder must name an encoder, e.g. minilm, glove-6b-50d or bert-base-uncased")
        if not 1 <= self.max_length <= 4096:
            raise ExssnetError(f"max_length must be in 1..4096, got {self.max_length}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """Build from a mapping, refusing unknown keys with the list of known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ExssnetError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys (dashes in keys are accepted as underscores)."""
    path = Path(path)
    if not path.is_file():
        raise ExssnetError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise ExssnetError(f"config file {path} is not valid YAML: {getattr(exc, 'problem', None) or exc}{at}") from None
    if not isinstance(values, dict):
        raise ExssnetError(f"config file {path} must hold a mapping of keys to values")
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def _check_types(config: Any) -> None:
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        allowed = _allowed_types(hints[f.name])
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            setattr(config, f.name, float(value))
            continue
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise ExssnetError(f"config key {f.name!r} must be {names}, got {value!r} ({type(value).__name__})")


def _allowed_types(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _allowed_types(arg))
    return (origin or hint,)
