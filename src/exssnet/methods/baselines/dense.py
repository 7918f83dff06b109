"""The part every dense baseline shares: a multi-head model, the per-task training loop, evaluation.

A method module only overrides the hooks it needs:
- `training_loss(x, y, task_id)`  cross-entropy on the task's head, plus its regulariser / replay terms
                                  (`training_step` wraps it in a `Step`; a method whose later hooks need the
                                  batch's logits returns them there, as DER does);
- `after_backward(task_id)`       change gradients before the optimizer step (A-GEM projection);
- `after_step(x, y, task_id, step)` bookkeeping after a step (SI path integral, replay buffer insertion);
- `before_task` / `after_task`    set up / consolidate (EWC Fisher, LwF teacher, ...);
- `grow(task_id)`                 the modules and bookkeeping a task adds before training (its head, adapters):
                                  `before_task` calls it, and a resumed run calls it for every finished task
                                  before it loads the checkpoint;
- `resumed_modules`               the modules a checkpoint keeps (default: `self.net`);
- `resume_state` / `load_resume_state`  what else a resumed run needs (buffers, Fisher, ...): a method that keeps
                                  tensors or values outside its modules adds them to `super().resume_state()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from exssnet import distributed
from exssnet.data.tasks import Benchmark, Inputs, TaskData
from exssnet.errors import ExssnetError
from exssnet.methods.base import ContinualMethod
from exssnet.methods.baselines.multihead import MultiHeadNet
from exssnet.methods.loops import EpochCallback, PhaseHistory, PhaseSpec, Step, StepHooks, accuracy, train_phase
from exssnet.methods.method_state import MethodState, load_method_state, save_method_state
from exssnet.models import build_model
from exssnet.seeds import TaskStream, task_generator
from exssnet.settings import CoreSettings, Settings, finite_positive, setting


@dataclass
class BaselineSettings(Settings):
    """Settings every dense baseline reads."""

    baseline_epochs: int | None = setting(None, "epochs per task (default mask_epochs + weight_epochs)")
    baseline_lr: float = setting(0.001, "learning rate (of baseline_optimizer)")
    baseline_optimizer: str = setting("adam", "'adam' (weight decay 0) or plain 'sgd' (no momentum; WSN's EWC)")
    baseline_head: str = setting("per-task", "'per-task' (one Linear head per task) or 'shared' (one Linear head of "
                                 "the benchmark's largest class count for every task: GPM's single-head MLP)")

    def check(self) -> None:
        if self.baseline_epochs is not None and self.baseline_epochs < 0:
            raise ExssnetError(f"baseline_epochs must be >= 0, got {self.baseline_epochs}")
        finite_positive(self, "baseline_lr")
        if self.baseline_optimizer not in ("adam", "sgd"):
            raise ExssnetError(f"baseline_optimizer must be 'adam' or 'sgd', got {self.baseline_optimizer!r}")
        if self.baseline_head not in ("per-task", "shared"):
            raise ExssnetError(f"baseline_head must be 'per-task' or 'shared', got {self.baseline_head!r}")


class DenseMethod(ContinualMethod):
    """A dense model of `config.model` with one head per task, trained task after task with Adam.

    After every task it writes a method-state checkpoint (exssnet.methods.method_state), so --resume continues it.
    """

    resumable = True
    resumable_data_parallel = False  # e.g. replay buffers fill from each process's shard

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.net = self.new_net()

    @property
    def epochs_per_task(self) -> int:
        """Epochs trained per task: the same total as a supermask method unless baseline_epochs is set."""
        epochs = self.settings.baseline_epochs
        return self.config.mask_epochs + self.config.weight_epochs if epochs is None else epochs

    def new_net(self) -> MultiHeadNet:
        dense = build_model(self.config.model, self.benchmark.input_shape, self.benchmark.max_classes)
        shared = self.benchmark.max_classes if self.settings.baseline_head == "shared" else None
        return MultiHeadNet(dense, shared_width=shared).to(self.device)

    # --- hooks -------------------------------------------------------------------------------------
    def task_logits(self, x: Inputs, task_id: int) -> torch.Tensor:
        """Logits of task `task_id`'s head: what training, validation and `logits` use (DER's replay step and
        MbPA++'s local adaptation call `self.net` themselves)."""
        return self.net(x, task_id)

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        return F.cross_entropy(self.task_logits(x, task_id), y)

    def validation_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        """A validation batch's mean loss for `keep_best_epoch`: cross-entropy on the task's head (no penalty)."""
        return F.cross_entropy(self.task_logits(x, task_id), y)

    def validation_accuracy(self, task_id: int, task: TaskData) -> float:
        return accuracy(lambda v: self.task_logits(v, task_id), task.val, self.config.eval_batch_size)

    def trainable_parameters(self, task_id: int) -> list[torch.nn.Parameter]:
        """What the optimizer of task `task_id` updates (default: the whole multi-head model)."""
        return list(self.net.parameters())

    def learning_rate(self) -> float:
        return self.settings.baseline_lr

    def after_backward(self, task_id: int) -> None:
        pass

    def training_step(self, x: Inputs, y: torch.Tensor, task_id: int) -> Step:
        """The step's loss (and, for methods that keep them, the batch's logits on its own head)."""
        return Step(self.training_loss(x, y, task_id))

    def after_step(self, x: Inputs, y: torch.Tensor, task_id: int, step: Step) -> None:
        pass

    def grow(self, task_id: int) -> None:
        """What task `task_id` adds before it trains (default: its head). A resumed run calls it for every
        finished task, in order, before `load_resume_state`, so the model has the checkpoint's modules again."""
        self.net.add_head(self.benchmark.tasks[task_id].num_classes)

    def before_task(self, task_id: int, task: TaskData) -> None:
        self.grow(task_id)

    def after_task(self, task_id: int, task: TaskData) -> None:
        pass

    # --- the engine-facing interface ---------------------------------------------------------------
    def learn_task(self, task_id: int, task: TaskData, progress: bool, on_epoch: EpochCallback | None) -> dict:
        self.before_task(task_id, task)
        history = self.fit(task_id, task, self.epochs_per_task, progress, on_epoch)
        self.after_task(task_id, task)
        self.num_learned += 1
        distributed.check_identical(dict(self.net.state_dict()), f"the model after task {task_id}")
        return {"train_phase": history.to_dict()}

    def fit(self, task_id: int, task: TaskData, epochs: int, progress: bool, on_epoch: EpochCallback | None) -> PhaseHistory:
        """`epochs` over the task through the shared `train_phase` (a fresh optimizer, the run's schedule)."""
        cfg = self.config
        hooks = StepHooks(
            batch_loss=lambda x, y: self.training_step(x, y, task_id),
            after_backward=lambda: self.after_backward(task_id),
            after_step=lambda x, y, step: self.after_step(x, y, task_id, step),
            validate=lambda: self.validation_accuracy(task_id, task),
            validation_loss=lambda x, y: self.validation_loss(x, y, task_id),
        )
        spec = PhaseSpec.of(cfg, "train", epochs, self.learning_rate(), task_generator(cfg.seed, task_id, TaskStream.DENSE),
                            optimizer=self.settings.baseline_optimizer)
        return train_phase(spec, self.net, lambda x: self.task_logits(x, task_id), self.trainable_parameters(task_id), task,
                           progress, on_epoch, hooks)

    def logits(self, x: Inputs, task_id: int) -> torch.Tensor:
        return self.task_logits(x, self.check_task(task_id))

    # --- checkpoints (--resume) ----------------------------------------------------------------------
    def resumed_modules(self) -> dict[str, torch.nn.Module]:
        """The modules a checkpoint keeps, by name (default: the model)."""
        return {"net": self.net}

    def resume_state(self) -> MethodState:
        """Everything a resumed run needs after the learned tasks: `resumed_modules`, and what a method adds."""
        state = MethodState(values={"num_learned": self.num_learned})
        for name, module in self.resumed_modules().items():
            state.put(name, module.state_dict())
        return state

    def load_resume_state(self, state: MethodState) -> None:
        """Take back what `resume_state` kept (the finished tasks' modules exist again: `grow` ran for each)."""
        for name, module in self.resumed_modules().items():
            state.load_module(name, module)

    def save_checkpoint(self, directory: Path, metadata: dict) -> None:
        save_method_state(directory, self.config.method, self.resume_state(), metadata)

    def load_checkpoint(self, directory: Path) -> None:
        state = load_method_state(directory, self.config.method)
        learned = state.value("num_learned", int)
        if not 0 <= learned <= len(self.benchmark.tasks):
            raise ExssnetError(f"{directory} holds {learned} learned task(s), the benchmark has {len(self.benchmark.tasks)}")
        for task_id in range(learned):
            self.grow(task_id)
        self.load_resume_state(state)
        self.num_learned = learned

    def eval_mode(self) -> None:
        self.net.eval()
