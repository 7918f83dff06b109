"""Typed settings dataclasses: the run's core settings and the base of every method's own settings.

A settings class is a dataclass whose fields are made with `setting(default, help, role)`; its `check()` raises
ExssnetError for bad values. Field types are checked first (ints are accepted where floats are expected).

Every field declares its `Role`: whether it changes what a run computes (RESULT, the default) or only where and
how it ran (INCIDENTAL), and whether a resumed run may change it (RESUME_FREE). A field of a method's settings
class is owned by the methods registered with that class (exssnet.methods.register_method); the core settings
are read by every run. `exssnet.run.config.config_diff` reads the roles.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from exssnet.errors import ExssnetError, check_amp, check_density


class Role(str, Enum):
    """What a setting is to the question "is this the same run?"."""

    RESULT = "result"            # changes what the run computes: runs that differ in it are different runs
    INCIDENTAL = "incidental"    # where/how it ran (device, logging): a sweep skips a finished cell differing only here
    RESUME_FREE = "resume_free"  # incidental, and a resumed run may also change it (threads, workers)


def setting(default: Any, help: str, role: Role = Role.RESULT) -> Any:
    """A settings field with its CLI help text and role (every field becomes a `--flag` of `exssnet run`)."""
    return field(default=default, metadata={"help": help, "role": role})


def role_of(f: dataclasses.Field) -> Role:
    """The declared role of a settings field (RESULT when a field was made without `setting`)."""
    return Role(f.metadata.get("role", Role.RESULT))


@dataclass
class Settings:
    """Base of every settings dataclass: types are checked, then `check()` runs."""

    def __post_init__(self) -> None:
        check_types(self)
        self.check()

    def check(self) -> None:
        """Raise ExssnetError for a bad value (override; the base accepts everything)."""

    def check_run(self) -> None:
        """Raise ExssnetError for what a run of the method cannot do without (e.g. a model to load), checked when
        a run is configured, before any data is read; the defaults themselves may lack it (override)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def at_least_one(settings: Any, *names: str) -> None:
    """Integer settings that must be >= 1 when set (None means "default" where a field allows it)."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise ExssnetError(f"{name} must be at least 1, got {value}")


LR_SCHEDULES = ("cosine", "constant")
MAX_SEED = 2**32 - 1  # torch seeds are 64-bit; runs derive further seeds from this one
MNIST_NORMALISED = ("permuted-mnist", "rotated-mnist")  # the benchmarks that read mnist_normalise


def finite_positive(settings: Any, *names: str) -> None:
    for name in names:
        if not 0 < getattr(settings, name) < float("inf"):
            raise ExssnetError(f"{name} must be a finite number > 0, got {getattr(settings, name)}")


def loss_weight(settings: Any, *names: str) -> None:
    for name in names:
        if not 0 <= getattr(settings, name) < float("inf"):
            raise ExssnetError(f"{name} must be a finite number >= 0 (a loss weight), got {getattr(settings, name)}")


@dataclass
class CoreSettings(Settings):
    """What every run needs whatever its method: data, model, mask phases, evaluation, logging, text encoder."""

    benchmark: str = setting("split-mnist", "benchmark name, e.g. split-mnist, split-fashion-mnist, split-digits")
    method: str = setting("exssnet", "a registered method name (`exssnet run --help` lists them)")
    model: str = setting("lenet", "model name, e.g. lenet")
    density: float = setting(0.1, "fraction of weights each task's mask keeps, in (0, 1]")
    seed: int = setting(0, "random seed (class order, initialisation, data order)")
    device: str = setting("cpu", "cpu, cuda or cuda:N", Role.INCIDENTAL)
    num_tasks: int | None = setting(None, "use only the first N tasks")
    classes_per_task: int = setting(2, "classes per task")
    class_order: str = setting("seeded", "'seeded' permutation or 'sequential'")
    val_fraction: float = setting(0.1, "fraction of each task's training data held out for validation")
    eval_split: str = setting("test", "split the accuracy matrix is measured on: 'test', or 'val' (each task's "
                              "held-out validation examples) to choose settings without reading the test split")
    mnist_normalise: bool = setting(False, "permuted-mnist, rotated-mnist: standardise pixels by MNIST's mean 0.1307 "
                                           "and std 0.3081 (GPM's and WSN's inputs); default: pixels in [0, 1]")
    data_dir: str | None = setting(None, "folder with the dataset files (standard formats)", Role.INCIDENTAL)
    batch_size: int = setting(128, "training batch size")
    eval_batch_size: int = setting(1024, "evaluation batch size")
    mask_epochs: int = setting(5, "epochs of the mask (scores) phase per task")
    weight_epochs: int = setting(5, "epochs of the weight phase per task (ssnet, exssnet)")
    mask_lr: float = setting(0.01, "Adam learning rate of the mask phase")
    weight_lr: float = setting(0.0005, "Adam learning rate of the weight phase")
    lr_schedule: str = setting("cosine", "learning rate of every training phase: 'cosine' decay to 0 over the phase's "
                               "steps, or 'constant' (WSN's protocol)")
    keep_best_epoch: bool = setting(False, "end every training phase with the epoch of lowest validation loss "
                                           "(WSN's protocol; vision methods)")
    keep_scores: bool = setting(False, "keep finished tasks' float scores (default: only their packed masks)")
    deterministic: bool = setting(True, "use deterministic algorithms (bit-identical reruns on CPU)", Role.INCIDENTAL)
    threads: int | None = setting(None, "torch CPU threads", Role.RESUME_FREE)
    amp: str | None = setting(None, "automatic mixed precision: 'bf16' or 'fp16' (loss-scaled); unset: float32")
    channels_last: bool = setting(False, "convolutions in channels-last memory format (faster with CUDA tensor cores)")
    log_csv: bool = setting(True, "write per-epoch loss and validation accuracy to metrics.csv in the output folder", Role.INCIDENTAL)
    tensorboard: bool = setting(False, "write TensorBoard scalars to tensorboard/ in the output folder", Role.INCIDENTAL)
    scenario: str = setting("task-il", "'task-il' (task id given) or 'class-il' (also infer the task, see classil_rule)")
    classil_rule: str = setting("min-entropy", "class-il task inference: exact 'min-entropy' (one forward per task), "
                                "SupSup 'one-shot' gradient or its iterative 'binary' halving")
    classil_mode: str = setting("batch", "class-il task inference per 'batch' (one task per batch, SupSup's setting) "
                                "or per 'example' (tasks shuffled together)")
    classil_bn: str = setting("batch", "BatchNorm while superposing: 'batch' statistics or 'mixture' of tasks' statistics")
    classil_batch_size: int = setting(128, "class-il inference batch (the batch that shares one task in mode 'batch')")
    classil_every_task: bool = setting(False, "class-il: evaluate after every task, not only after the last")
    # ----- text benchmarks (text-offline, webnlp, glue); ignored by the others -----
    encoder: str = setting("minilm", "frozen token encoder: 'minilm' (offline default), 'mpnet-base' (make setup-text-large), "
                                   "'glove-6b-50d', a GloVe .txt file, a model folder or a name in the Hugging Face cache")
    max_length: int = setting(64, "tokens per text (longer texts are truncated) for the encoder")
    cache_dir: str | None = setting(None, "folder of cached encoder features (default: <data dir>/cache, data/text/cache)")
    text_max_train: int | None = setting(None, "training examples per class per task, sampled with a fixed seed (default: all; text-offline 200)")
    text_max_test: int | None = setting(None, "test examples per class per task, sampled with a fixed seed (default: all; text-offline 100)")
    text_order: str | None = setting(None, "task order: the paper's Table 6 S1 (glue), S2-S8 (webnlp; S6-S8 three tasks), or comma-separated dataset names")
    encode_batch_size: int = setting(64, "batch size of the frozen encoder when features are computed")
    augment: bool = setting(True, "augment training images where the benchmark does (split-cifar100: random crop + flip, "
                                  "split-tinyimagenet: flip); --no-augment trains on the plain images (imagenet refuses it)")
    # ----- benchmarks streamed from image files (imagenet); ignored by the others -----
    image_size: int = setting(224, "imagenet: training crop and evaluation centre-crop size (eval resizes the short side to 8/7 of it first)")
    workers: int = setting(4, "imagenet: DataLoader worker processes that decode images (0: in the main process)", Role.RESUME_FREE)

    def check(self) -> None:
        self.density = check_density(self.density)
        if self.scenario not in ("task-il", "class-il"):
            raise ExssnetError(f"scenario must be 'task-il' or 'class-il', got {self.scenario!r}")
        at_least_one(self, "batch_size", "eval_batch_size", "classes_per_task", "classil_batch_size", "num_tasks",
                     "text_max_train", "text_max_test", "encode_batch_size", "image_size")
        for name in ("mask_epochs", "weight_epochs"):
            if getattr(self, name) < 0:
                raise ExssnetError(f"{name} must be >= 0, got {getattr(self, name)}")
        finite_positive(self, "mask_lr", "weight_lr")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ExssnetError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ExssnetError(f"seed must be in 0..{MAX_SEED}, got {self.seed}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ExssnetError(f"threads must be in 1..1024 (or unset for torch's default), got {self.threads}")
        check_amp(self.amp)
        if self.workers < 0:
            raise ExssnetError(f"workers must be >= 0, got {self.workers}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ExssnetError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.eval_split not in ("test", "val"):
            raise ExssnetError(f"eval_split must be 'test' or 'val', got {self.eval_split!r}")
        if self.eval_split == "val" and self.val_fraction == 0.0:
            raise ExssnetError("eval_split 'val' needs validation examples: set val_fraction above 0")
        if self.mnist_normalise and self.benchmark not in MNIST_NORMALISED:
            raise ExssnetError(f"mnist_normalise is for {' and '.join(MNIST_NORMALISED)}, not {self.benchmark!r}")
        if not self.encoder.strip():
            raise ExssnetError("encoder must name an encoder, e.g. minilm, glove-6b-50d or bert-base-uncased")
        if not 1 <= self.max_length <= 4096:
            raise ExssnetError(f"max_length must be in 1..4096, got {self.max_length}")


def check_types(config: Any) -> None:
    """Refuse a value of the wrong type with one clear error; an int where a float is expected becomes a float."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        if f.name not in hints or not f.init:
            continue
        value = getattr(config, f.name)
        allowed = field_types(hints[f.name])
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            setattr(config, f.name, float(value))
            continue
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise ExssnetError(f"config key {f.name!r} must be {names}, got {value!r} ({type(value).__name__})")


def field_types(hint: Any) -> tuple[type, ...]:
    """The plain types a field's annotation allows (`int | None` -> (int, NoneType))."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in field_types(arg))
    return (origin or hint,)
