"""Run a method over a benchmark's tasks, fill the accuracy matrix and write results.json."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from exssnet import __version__, amp, distributed
from exssnet.data import BenchmarkSpec, build_benchmark
from exssnet.data.benchmarks import benchmark_input_kind
from exssnet.data.fingerprint import combine, data_fingerprint
from exssnet.data.tasks import Benchmark, TaskData, validation_as_test
from exssnet.data.text_options import TextOptions
from exssnet.diagnosis import at_chance, chance_threshold, likely_cause
from exssnet.errors import ExssnetError
from exssnet.methods import build_method
from exssnet.methods.base import ContinualMethod, method_text_inputs
from exssnet.methods.loops import accuracy
from exssnet.metrics import average_accuracy, average_accuracy_curve, forgetting
from exssnet.models.registry import model_input_kind, model_names
from exssnet.run.class_il import ClassILHook
from exssnet.run.config import RunConfig
from exssnet.run.drift import DriftHook
from exssnet.run.files import CHECKPOINTS_DIR, RESULTS_FILE, RUN_STATE_FILE, write_json_atomic
from exssnet.run.hooks import RunHook
from exssnet.run.log_hooks import CSV_FILE, TENSORBOARD_DIR, logging_hooks
from exssnet.run.machine import cpu_environment
from exssnet.run.resume import CheckpointHook, RunState, is_resumable, prepare_resume, restore
from exssnet.run.storage import storage_summary
from exssnet.seeds import task_seed
from exssnet.supermask import SupermaskNet


def check_device(name: str) -> torch.device:
    """The torch device `name` if this machine has it (cpu, cuda[:N], mps), else a clear error."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ExssnetError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ExssnetError(f"device {name!r} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ExssnetError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ExssnetError(f"device {name!r} requested but MPS is not available on this machine")
    elif device.type != "cpu":
        raise ExssnetError(f"device {name!r} is not supported; use cpu, cuda or cuda:N")
    return device


def configure_torch(config: RunConfig) -> None:
    """Seed, threads, determinism and a usable device, or a clear error."""
    check_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(config.seed)


INPUT_KINDS = {"image": "image tensors", "tokens": "frozen-encoder token features"}


def check_model_fits(benchmark: str, model: str) -> None:
    """Refuse a model that cannot read what the benchmark gives (both registrations' `input_kind`)."""
    gives, reads = benchmark_input_kind(benchmark), model_input_kind(model)
    if gives is not None and reads is not None and gives != reads:
        fitting = [name for name in model_names() if model_input_kind(name) == gives]
        raise ExssnetError(f"benchmark {benchmark!r} gives {INPUT_KINDS.get(gives, gives)}; model {model!r} "
                           f"cannot read them: use --model {', '.join(fitting) or 'a model of that input kind'}")


def load_benchmark(config: RunConfig, progress: bool = False) -> Benchmark:
    inputs = method_text_inputs(config.method)  # language methods read tokens with their own encoder
    spec = BenchmarkSpec(
        seed=config.seed, num_tasks=config.num_tasks, classes_per_task=config.classes_per_task,
        val_fraction=config.val_fraction, data_dir=config.data_dir, class_order=config.class_order,
        text=TextOptions(
            encoder=config.encoder, max_length=config.max_length, cache_dir=config.cache_dir,
            max_train_per_class=config.text_max_train, max_test_per_class=config.text_max_test,
            order=config.text_order, encode_batch_size=config.encode_batch_size, device=config.device,
            inputs=inputs, progress=progress,
        ),
        image_size=config.image_size, workers=config.workers, augment=config.augment,
        mnist_normalise=config.mnist_normalise,
    )
    if inputs == "features":
        check_model_fits(config.benchmark, config.model)
    benchmark = build_benchmark(config.benchmark, spec)
    if config.eval_split == "val":
        benchmark = validation_as_test(benchmark)
    if "data_fingerprint" not in benchmark.info:  # the tasks' test sets, whatever their order
        benchmark.info["data_fingerprint"] = combine(data_fingerprint(task.test) for task in benchmark.tasks)
    if config.data_dir is not None:
        benchmark.info["data_dir"] = str(Path(config.data_dir).expanduser().resolve())
    return benchmark


def task_to_device(task: TaskData, device: torch.device, channels_last: bool = False) -> TaskData:
    """The task's splits on `device` (image batches in channels-last memory format when asked)."""
    fmt = torch.channels_last if channels_last else None
    return replace(task, train=task.train.to(device, fmt), val=task.val.to(device, fmt), test=task.test.to(device, fmt))


def use_channels_last(method: ContinualMethod) -> None:
    """Put the method's network (every 4-d weight and score) in channels-last memory format."""
    net = getattr(method, "net", None)
    if not isinstance(net, torch.nn.Module):
        raise ExssnetError(f"--channels-last: method {method.config.method!r} has no network to convert")
    net.to(memory_format=torch.channels_last)


def evaluate_seen(method: ContinualMethod, tasks: list[TaskData], upto: int, batch_size: int,
                  on_outputs: Callable[[int, torch.Tensor], None] | None = None) -> list[float]:
    """Test accuracy (percent) on tasks 0..upto with each task's own id.

    With `on_outputs` (one process), each task's test logits go to `on_outputs(j, logits)` from the same pass,
    so hooks that need outputs (drift) do not evaluate again. Under data parallel each rank scores a shard.
    """
    method.eval_mode()
    keep = on_outputs is not None and not distributed.active()
    accs = []
    for j in range(upto + 1):
        batches: list[torch.Tensor] = []

        def logits_fn(x, j=j, batches=batches):  # noqa: ANN001, ANN202 - accuracy's LogitsFn
            logits = method.logits(x, j)
            if keep:
                batches.append(logits.float().cpu())
            return logits

        accs.append(accuracy(logits_fn, tasks[j].test, batch_size))
        if keep:
            on_outputs(j, torch.cat(batches))  # type: ignore[misc]
    return accs


def chance_flag(method: ContinualMethod, config: RunConfig, task: TaskData, t: int, acc: float) -> dict | None:
    """{"chance", "likely_cause"} when task `t` ended no better than guessing, else None."""
    if not at_chance(acc, task.num_classes, len(task.test)):
        return None
    net = getattr(method, "net", None)
    supermask = isinstance(net, SupermaskNet)
    own_lrs = {key: value for key, value in method.settings.to_dict().items() if key.endswith("_lr")}
    lrs = {"mask_lr": config.mask_lr, "weight_lr": config.weight_lr} if supermask else own_lrs
    cause = likely_cause(net if supermask else None, t, task.num_classes, lrs)
    return {"chance": chance_threshold(task.num_classes, len(task.test))[0], "test_examples": len(task.test),
            "likely_cause": cause}


def chance_message(t: int, name: str, acc: float, flag: dict) -> str:
    """The warning of a task flagged at chance: its accuracy, on how many test examples, against chance."""
    examples = f" on {flag['test_examples']} test examples" if "test_examples" in flag else ""  # flagged before it was kept
    return (f"task {t} ({name}) ended at chance: {acc:.2f}%{examples} is not clearly above chance "
            f"({flag['chance']:.2f}%); likely cause: {flag['likely_cause']}")


def check_nonempty(tasks: list[TaskData]) -> list[TaskData]:
    """Refuse, before anything is trained, a task without training or test examples."""
    for t, task in enumerate(tasks):
        for split in ("train", "test"):
            if len(getattr(task, split)) == 0:
                raise ExssnetError(f"task {t} ({task.name}, classes {task.classes}) has no {split} examples; "
                                   "check the data folder and the class split")
    return tasks


def prepare_out_dir(out: Path | None, overwrite: bool, files: Sequence[str] = (), folders: Sequence[str] = ()) -> None:
    """Create the output folder and check, before anything trains, that every output place is writable.

    `files` are the files the run will write in `out`, `folders` the folders it will write into.
    Refuses to replace earlier results unless told to.
    """
    if out is None:
        return
    if (out / RESULTS_FILE).exists() and not overwrite:
        raise ExssnetError(f"{out / RESULTS_FILE} already exists; pass --overwrite to replace it or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExssnetError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    for name in (RESULTS_FILE, *files):
        path = out / name
        if path.is_dir() or (path.exists() and not os.access(path, os.W_OK)):
            raise ExssnetError(f"cannot write {path}: it is {'a folder' if path.is_dir() else 'not writable'}")
    for folder in (out, *(out / name for name in folders)):
        if folder.exists() and not folder.is_dir():
            raise ExssnetError(f"cannot write into {folder}: it is a file, not a folder")
        if folder.is_dir():
            check_writable_folder(folder)


def check_writable_folder(folder: Path) -> None:
    """Create and remove a probe file in `folder`, or raise a clear error."""
    probe = folder / f".exssnet-write-check-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ExssnetError(f"cannot write into output folder {folder}: {exc.strerror or exc}") from None


def output_places(config: RunConfig, checkpoints: bool) -> tuple[list[str], list[str]]:
    """(files, folders) a run with `config` writes in its output folder besides results.json."""
    files, folders = [], []
    if checkpoints:
        files.append(RUN_STATE_FILE)
        folders.append(CHECKPOINTS_DIR)
    if config.log_csv:
        files.append(CSV_FILE)
    if config.tensorboard:
        folders.append(TENSORBOARD_DIR)
    return files, folders


def run_hooks(config: RunConfig, out: Path | None, method: ContinualMethod, tasks: list[TaskData],
              state: RunState | None, extra: Sequence[RunHook], checkpoints: bool) -> list[RunHook]:
    """Every hook of a run, in call order: class-IL evaluation, logs, the caller's, drift, then the checkpoint
    (which saves the others' state with the method's, `checkpoints` only for a method that writes them)."""
    hooks: list[RunHook] = []
    if config.scenario == "class-il":
        hooks.append(ClassILHook(config, method, tasks))
    hooks += logging_hooks(config, out)
    hooks += extra
    hooks.append(DriftHook(tasks, config.eval_batch_size))
    if out is not None and checkpoints:
        hooks.append(CheckpointHook(out, config, state, distributed.world_size(), hooks=list(hooks)))
    return hooks


def run_experiment(
    config: RunConfig,
    out: Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
    hooks: Sequence[RunHook] = (),
    log: Callable[[str], None] = tqdm.write,
    resume: bool = False,
    checkpoints: bool = True,
) -> dict:
    """Learn every task of the benchmark in order; returns (and writes to `out`) the results dict.

    With `out`, a checkpoint is written after every task (`checkpoints`); `resume` continues the
    run in `out` from its last finished task (see exssnet.run.resume). Logs, checkpoints and class-IL
    evaluation are hooks (exssnet.run.hooks); `hooks` adds the caller's own.
    """
    config.settings_of().check_run()  # what the method cannot run without, before any file or data is touched
    world_size = distributed.world_size()
    resumable = is_resumable(config.method, world_size)  # decided once per run
    checkpoints = checkpoints and resumable
    state = prepare_resume(out, config, resume, overwrite, resumable, world_size)
    main = distributed.is_main()  # data parallel (torchrun): only rank 0 writes files, logs and prints
    files, folders = output_places(config, checkpoints) if main else ([], [])
    prepare_out_dir(out, overwrite or state is not None, files, folders)  # a resumed run replaces older results
    progress = progress and main
    configure_torch(config)
    started = time.perf_counter()
    benchmark = load_benchmark(config, progress)
    method = build_method(config, benchmark, config.settings_of())
    unread = method.unread_core_settings()
    for line in unread if progress else ():
        log(f"warning: {line}")
    distributed.check_batch_size(config.batch_size, getattr(method, "net", None))  # torchrun: rows for every process
    device = torch.device(config.device)
    tasks = [task_to_device(task, device, config.channels_last) for task in check_nonempty(benchmark.tasks)]
    if config.channels_last:
        use_channels_last(method)
    n = len(tasks)
    acc: list[list[float | None]] = [[None] * n for _ in range(n)]
    task_records: list[dict] = []
    all_hooks = run_hooks(config, out, method, tasks, state, hooks, checkpoints) if main else []
    first = restore(method, out, state, acc, task_records, all_hooks) if out is not None else 0
    for hook in all_hooks:
        hook.on_run_start(config.to_dict(), [task.name for task in tasks])

    bar = tqdm(range(first, n), desc=f"{config.method} on {benchmark.name}", unit="task", disable=not progress)
    for t in bar:
        torch.manual_seed(task_seed(config.seed, t))
        task_start = time.perf_counter()
        with amp.autocast(config.amp, device):  # --amp bf16|fp16; float32 when unset
            info = method.learn_task(t, tasks[t], progress, lambda epoch, t=t: [h.on_epoch(t, epoch) for h in all_hooks])
            wall = time.perf_counter() - task_start
            acc[t][: t + 1] = evaluate_seen(method, tasks, t, config.eval_batch_size,
                                            lambda j, logits, t=t: [h.on_test_outputs(t, j, logits) for h in all_hooks])
        task_records.append({"name": tasks[t].name, "classes": tasks[t].classes, "wall_time_s": wall, **info})
        flag = chance_flag(method, config, tasks[t], t, acc[t][t])  # type: ignore[arg-type]
        if flag is not None:
            task_records[-1]["at_chance"] = flag
            if progress:
                log(f"warning: {chance_message(t, tasks[t].name, acc[t][t], flag)}")  # type: ignore[arg-type]
        for hook in all_hooks:
            hook.on_task_end(t, method, acc[t][: t + 1], task_records[-1])  # type: ignore[arg-type]
        seen = sum(acc[t][: t + 1]) / (t + 1)  # type: ignore[arg-type]
        bar.set_postfix(avg_acc=f"{seen:.2f}")
        if progress:
            log(f"task {t} {tasks[t].classes}: acc on task {acc[t][t]:.2f}, avg over {t + 1} seen {seen:.2f} ({wall:.1f}s)")

    results = {
        "method": config.method,
        "benchmark": benchmark.name,
        "model": config.model,
        "density": config.density,
        "seed": config.seed,
        "acc_matrix": acc,
        "avg_acc": average_accuracy(acc),
        "forgetting": forgetting(acc),
        "avg_acc_curve": average_accuracy_curve(acc),
        "sparse_overlap": None,
        **method.summary(),
        **storage_summary(method),  # capacity, bits_per_param_per_task (exssnet.run.storage)
        "task_names": [task.name for task in tasks],
        "task_time_s": [record["wall_time_s"] for record in task_records],
        "total_time_s": time.perf_counter() - started,
        "tasks": task_records,
        "warnings": unread + [chance_message(t, r["name"], acc[t][t], r["at_chance"])  # type: ignore[arg-type]
                              for t, r in enumerate(task_records) if "at_chance" in r],
        "benchmark_info": benchmark.info,
    }
    for hook in all_hooks:
        hook.add_results(results)
    results["config"] = config.to_dict()  # the core settings and the method's own
    results["environment"] = {"exssnet": __version__, "torch": torch.__version__, "python": platform.python_version(),
                              "device": str(device), "world_size": world_size, **cpu_environment()}
    if out is not None and main:
        write_json_atomic(out / RESULTS_FILE, results)
    for hook in all_hooks:
        hook.on_run_end(results)
    return results
