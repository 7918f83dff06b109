"""Checkpoint after every task and resume a run that was killed, from its last finished task.

A run folder `--out DIR` holds, while the run goes on:

    DIR/run_state.json            config, accuracy rows, task records and the run hooks' JSON state
    DIR/checkpoints/task-<t>/     the method's state after task t (only the newest is kept), and the run
                                  hooks' tensors (run_hooks.safetensors)

Both are written atomically (temp file/folder, then a rename), and run_state.json only ever
names a complete checkpoint folder, so a SIGKILL at any moment leaves a resumable run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from exssnet.errors import ExssnetError
from exssnet.methods import method_supports_resume
from exssnet.run.config import Purpose, RunConfig, config_diff
from exssnet.run.files import (
    CHECKPOINTS_DIR,
    HOOKS_FILE,
    RESULTS_FILE,
    RUN_STATE_FILE,
    TIMING_KEYS,
    checkpoint_name,
    write_json_atomic,
)
from exssnet.run.hooks import RunHook

STATE_VERSION = 1


@dataclass
class RunState:
    """What a run folder says about its finished tasks."""

    config: dict[str, Any]
    acc_rows: list[list[float]]
    task_records: list[dict]
    checkpoint: str | None  # folder name under DIR/checkpoints
    world_size: int = 1  # data-parallel processes (torchrun) that learned the finished tasks
    hooks: dict[str, dict] = field(default_factory=dict)  # each run hook's JSON state (its tensors: HOOKS_FILE)

    @property
    def completed(self) -> int:
        return len(self.acc_rows)

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "config": self.config, "acc_rows": self.acc_rows,
                "task_records": self.task_records, "checkpoint": self.checkpoint, "world_size": self.world_size,
                "hooks": self.hooks}


def read_run_state(out: Path) -> RunState:
    """The validated run state of `out`, or a clear error when there is nothing to resume."""
    path = out / RUN_STATE_FILE
    if not path.is_file():
        raise ExssnetError(f"nothing to resume in {out}: {RUN_STATE_FILE} not found (no task of a run there has finished)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExssnetError(f"{path} is corrupted: {exc}") from None
    ok = (isinstance(data, dict) and data.get("version") == STATE_VERSION and isinstance(data.get("config"), dict)
          and isinstance(data.get("acc_rows"), list) and isinstance(data.get("task_records"), list)
          and len(data["acc_rows"]) == len(data["task_records"])
          and all(isinstance(row, list) and len(row) == i + 1 for i, row in enumerate(data["acc_rows"]))
          and (data.get("checkpoint") is None or isinstance(data["checkpoint"], str))
          and isinstance(data.get("world_size", 1), int) and data.get("world_size", 1) >= 1
          and isinstance(data.get("hooks", {}), dict) and all(isinstance(v, dict) for v in data.get("hooks", {}).values()))
    if not ok:
        raise ExssnetError(f"{path} is not a valid exssnet run state (corrupted or from another version)")
    state = RunState(data["config"], data["acc_rows"], data["task_records"], data["checkpoint"],
                     data.get("world_size", 1), data.get("hooks", {}))  # older states: one process, no hook state
    if state.completed and state.checkpoint is None:
        raise ExssnetError(f"{path} names no checkpoint for its {state.completed} finished task(s)")
    if state.checkpoint is not None and not (out / CHECKPOINTS_DIR / state.checkpoint).is_dir():
        raise ExssnetError(f"{path} names checkpoint {state.checkpoint!r}, which is missing from {out / CHECKPOINTS_DIR}")
    return state


def resume_config(out: Path, given: dict[str, Any]) -> RunConfig:
    """The saved config of `out` with `given` keys on top; refuses keys whose value would change."""
    method = given.get("method") or method_of_finished_run(out)
    if not (out / RUN_STATE_FILE).is_file():  # nothing to resume: run_experiment says why (the method, or no state)
        return RunConfig.from_dict({**given, **({"method": method} if method else {})})
    saved = read_run_state(out).config
    try:
        config = RunConfig.from_dict({**saved, **given})
    except ExssnetError as exc:
        raise ExssnetError(f"cannot resume {out}: {exc}") from None
    check_same_config(out, saved, config)
    return config


def check_same_config(out: Path, saved: dict[str, Any], config: RunConfig) -> None:
    diffs = config_diff(saved, config.to_dict(), Purpose.RESUME)
    if diffs:
        raise ExssnetError(f"cannot resume {out} with a different config ({'; '.join(map(str, diffs))}); "
                           "start a new run in another --out folder instead")


def check_same_world_size(out: Path, state: RunState, world_size: int) -> None:
    """Refuse to continue with another number of data-parallel processes (docs/distributed.md says why)."""
    if state.world_size != world_size:
        raise ExssnetError(f"cannot resume {out} with {world_size} process(es): its {state.completed} finished task(s) "
                           f"were learned with {state.world_size} (torchrun --nproc-per-node); the masks depend on it. "
                           f"Resume it with {state.world_size} process(es), or start a new run in another --out folder")


def method_of_finished_run(out: Path) -> str | None:
    """The method named in out/results.json when there is no run state to read it from, else None."""
    if (out / RUN_STATE_FILE).is_file():
        return None
    try:
        method = json.loads((out / RESULTS_FILE).read_text()).get("config", {}).get("method")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return method if isinstance(method, str) else None


def not_resumable(method: str, world_size: int = 1) -> ExssnetError:
    """The error for --resume with a method that writes no checkpoints (in a run of `world_size` processes)."""
    if world_size > 1 and method_supports_resume(method):
        return ExssnetError(f"--resume is not supported for method {method!r} with {world_size} processes: its state "
                            "differs between processes, so a data-parallel run writes no checkpoints; run it again "
                            "without --resume (or in one process)")
    return ExssnetError(f"--resume is not supported for method {method!r}: it writes no checkpoints; run it again "
                        "without --resume")


def is_resumable(method: str, world_size: int = 1) -> bool:
    """Whether a run of `method` in `world_size` processes writes checkpoints and can be resumed (asked once per run)."""
    return method_supports_resume(method, world_size)


def prepare_resume(out: Path | None, config: RunConfig, resume: bool, overwrite: bool, resumable: bool,
                   world_size: int = 1) -> RunState | None:
    """Check the run folder before anything is written; returns the state to resume from (or None).

    `resumable`: whether the method writes checkpoints (decided once per run, `method_supports_resume`);
    `world_size`: the data-parallel processes of this run; a resumed run must have as many as the first part.
    """
    if out is None:
        if resume:
            raise ExssnetError("--resume needs the --out folder of the run to continue")
        return None
    if resume and not resumable:
        raise not_resumable(config.method, world_size)
    if not resume:
        if (out / RUN_STATE_FILE).exists() and not (out / RESULTS_FILE).exists() and not overwrite:
            raise ExssnetError(f"{out} holds an unfinished run; continue it with --resume, "
                               "pass --overwrite to start over, or choose another --out")
        return None
    state = read_run_state(out)
    if is_complete(out, state):
        raise ExssnetError(f"the run in {out} is already complete ({out / RESULTS_FILE} exists)")
    check_same_config(out, state.config, config)
    check_same_world_size(out, state, world_size)
    return state


def is_complete(out: Path, state: RunState) -> bool:
    """True when out/results.json is this run's (not an older run's that --overwrite is replacing)."""
    try:
        results = json.loads((out / RESULTS_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(results, dict) or not isinstance(results.get("config"), dict):
        return False
    return (not config_diff(results["config"], state.config, Purpose.COMPLETE)
            and len(results.get("acc_matrix") or []) == state.completed)


def restore(method: Any, out: Path, state: RunState | None, acc: list[list[float | None]], records: list[dict],
            hooks: list[RunHook]) -> int:
    """Load the method's checkpoint, fill the finished rows and give every hook its saved state; returns the
    first task to learn. `state` is only ever a resumable method's (prepare_resume)."""
    if state is None or state.completed == 0:
        return 0
    if state.completed > len(acc):
        raise ExssnetError(f"{out / RUN_STATE_FILE} has {state.completed} finished tasks, the benchmark only {len(acc)}")
    method.load_checkpoint(out / CHECKPOINTS_DIR / str(state.checkpoint))
    if method.num_learned != state.completed:
        raise ExssnetError(f"checkpoint {state.checkpoint!r} holds {method.num_learned} task(s), "
                           f"{RUN_STATE_FILE} says {state.completed}")
    for t, row in enumerate(state.acc_rows):
        acc[t][: t + 1] = row
    records.extend(state.task_records)
    load_hook_states(hooks, out / CHECKPOINTS_DIR / str(state.checkpoint), state.hooks)
    return state.completed


def save_hook_states(hooks: list[RunHook], folder: Path) -> dict[str, dict]:
    """Every hook's state: tensors into folder/HOOKS_FILE (as `<state_key>/<name>`), the rest returned as JSON."""
    values: dict[str, dict] = {}
    tensors: dict[str, torch.Tensor] = {}
    for hook in hooks:
        if not hook.state_key:
            continue
        values[hook.state_key] = {}
        for name, value in hook.state_dict().items():
            if isinstance(value, torch.Tensor):
                tensors[f"{hook.state_key}/{name}"] = value.detach().cpu().contiguous()
            else:
                values[hook.state_key][name] = value
    if tensors:
        save_file(tensors, str(folder / HOOKS_FILE))
    return values


def load_hook_states(hooks: list[RunHook], folder: Path, values: dict[str, dict]) -> None:
    """Give each hook the state `save_hook_states` kept for it (an empty one when the run saved none)."""
    tensors: dict[str, torch.Tensor] = {}
    if (folder / HOOKS_FILE).is_file():
        try:
            tensors = load_file(str(folder / HOOKS_FILE))
        except (OSError, SafetensorError) as exc:
            raise ExssnetError(f"{folder / HOOKS_FILE} is corrupted or truncated ({exc}); start the run again") from None
    for hook in hooks:
        if hook.state_key:
            own = {name.partition("/")[2]: t for name, t in tensors.items() if name.partition("/")[0] == hook.state_key}
            hook.load_state_dict({**values.get(hook.state_key, {}), **own})


class CheckpointHook(RunHook):
    """After every task: the method's checkpoint with every other hook's state, then run_state.json naming it,
    then old ones removed. The runner adds it (last) only for a method that writes checkpoints."""

    def __init__(self, out: Path, config: RunConfig, state: RunState | None = None, world_size: int = 1,
                 hooks: list[RunHook] | None = None) -> None:
        """`hooks`: the run's other hooks, whose state is saved with each checkpoint."""
        self.hooks = hooks or []
        self.out = out
        self.state = state or RunState(config.to_dict(), [], [], None, world_size)
        self.task_names: list[str] = []
        # checkpoint folders this run (or the run it resumes) wrote: the only ones it may delete
        self.written: set[str] = {self.state.checkpoint} if self.state.checkpoint else set()

    def on_run_start(self, config: dict, task_names: list[str]) -> None:
        self.task_names = task_names

    def on_task_end(self, task: int, method: Any, acc_row: list[float], record: dict) -> None:
        folder = self.out / CHECKPOINTS_DIR
        name = checkpoint_name(task)
        target = folder / name
        if target.exists():
            if not is_checkpoint_folder(target):
                raise ExssnetError(f"{target} exists and is not an exssnet checkpoint; move it out of "
                                   f"{folder} (a run writes its checkpoints there) and resume")
            shutil.rmtree(target)  # a leftover of a kill before run_state.json named it
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExssnetError(f"cannot create {folder}: {exc.strerror or exc}") from None
        records = [*self.state.task_records, record]
        metadata = {"run_config": self.state.config, "task_names": self.task_names[: task + 1],
                    "class_names": [r["classes"] for r in records]}
        method.save_checkpoint(target, metadata)
        hooks = save_hook_states(self.hooks, target)
        self.written.add(name)
        self.state = replace(self.state, acc_rows=[*self.state.acc_rows, list(acc_row)], task_records=records,
                             checkpoint=name, hooks=hooks)
        write_json_atomic(self.out / RUN_STATE_FILE, self.state.to_dict())
        for old in sorted(self.written - {name}):
            shutil.rmtree(folder / old, ignore_errors=True)
        self.written = {name}


def is_checkpoint_folder(path: Path) -> bool:
    """True for a folder an exssnet run wrote as a checkpoint (its config.json names one of the two formats)."""
    from exssnet.checkpoint import CONFIG_FILE, FORMAT, METHOD_STATE_FORMAT

    try:
        return json.loads((path / CONFIG_FILE).read_text()).get("format") in (FORMAT, METHOD_STATE_FORMAT)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def comparable(results: dict) -> dict:
    """`results` without wall-clock fields: two runs with the same seed and config give equal dicts."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(results)


def interrupted_message(out: Path | None) -> str:
    """What to tell a user who pressed Ctrl-C: what is saved and how to continue."""
    if out is None or not (out / RUN_STATE_FILE).is_file():
        return "interrupted before any task finished; nothing was saved"
    try:
        done = read_run_state(out).completed
    except ExssnetError:
        return "interrupted"
    return f"interrupted; {done} finished task(s) are saved in {out}; continue with: exssnet run --out {out} --resume"
