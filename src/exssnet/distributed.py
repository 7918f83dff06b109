"""Data-parallel training with torch.distributed: what the loops and the runner call, all no-ops in one process.

Launched by torchrun (WORLD_SIZE > 1 in the environment), `launch` joins the process group (gloo on CPU,
NCCL on CUDA, each rank on cuda:LOCAL_RANK). Every rank holds the whole model and reads the same data
order from the same seeds; what keeps the ranks identical (docs/distributed.md):

- each global batch is cut row-wise, rank r taking rows r, r + W, ... (`shard`); gradients are
  all-reduced, weighted by each rank's rows, so a step equals one step on the whole batch;
- BatchNorm running statistics that a phase updated are averaged across ranks at the end of each epoch
  (so validation and the finished task use the same statistics everywhere);
- a decision taken once (KKT's source task and its scores) is taken on rank 0 and broadcast;
- after a task, a hash of every tensor of the model is gathered and compared (a mismatch is an error);
- evaluation is sharded and its counts summed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
import torch.distributed as dist
from torch import nn

from exssnet.errors import ExssnetError
from exssnet.layers.batchnorm import MultitaskBatchNorm
from exssnet.layers.gating import PerTaskBatchNorm


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes results, checkpoints and logs."""
    return rank() == 0


def shard() -> tuple[int, int] | None:
    """(rank, world size) to cut batches with, or None in one process."""
    return (rank(), world_size()) if active() else None


def launched_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 when not launched by it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ExssnetError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from None


@contextlib.contextmanager
def launch(device: str) -> Iterator[None]:
    """Join the torchrun process group for the duration of a run (nothing to do without torchrun)."""
    if launched_world_size() <= 1 or dist.is_initialized():
        yield
        return
    if not dist.is_available():
        raise ExssnetError("torchrun started several processes, but this torch build has no torch.distributed")
    cuda = device.startswith("cuda")
    if cuda:
        if ":" in device:
            raise ExssnetError(f"under torchrun use --device cuda (each rank takes cuda:LOCAL_RANK), not {device!r}")
        if not torch.cuda.is_available():
            raise ExssnetError(f"device {device!r} requested but CUDA is not available on this machine")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def _device() -> torch.device:
    """Where collectives' tensors live: the current CUDA device with NCCL, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_sum(*values: float) -> list[float]:
    """The sums over ranks of a few numbers (float64)."""
    if not active():
        return list(values)
    buffer = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(buffer)
    return buffer.tolist()


def broadcast_object(value: Any) -> Any:
    """Rank 0's `value` on every rank (a small picklable object)."""
    if not active():
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0, device=_device())
    return box[0]


def broadcast_decision(decision: Any, tensors: Mapping[str, torch.Tensor] | None,
                       device: torch.device) -> tuple[Any, dict[str, torch.Tensor] | None]:
    """Rank 0's decision object and its named tensors on every rank (tensors go by broadcast, not pickle)."""
    if not active():
        return decision, None if tensors is None else dict(tensors)
    decision = broadcast_object(decision)
    layout = broadcast_object(None if tensors is None else {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()})
    if layout is None:
        return decision, None
    mine = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()} if tensors is not None else None
    out = ({k: v.detach().clone().contiguous() for k, v in tensors.items()} if mine == layout and tensors is not None
           else {k: torch.empty(shape, dtype=dtype, device=device) for k, (shape, dtype) in layout.items()})
    for name in sorted(out):
        moved = out[name].to(_device())
        dist.broadcast(moved, src=0)
        out[name] = moved.to(device)
    return decision, out


def decide_on_main(decide: Callable[[], tuple[Mapping[str, torch.Tensor] | None, Any]],
                   device: torch.device) -> tuple[dict[str, torch.Tensor] | None, Any]:
    """Run `decide` (returning named tensors and a decision) on rank 0 only; every rank gets its result."""
    tensors, decision = decide() if is_main() else (None, None)
    decision, out = broadcast_decision(decision, tensors, device)
    return out, decision


def tensor_digest(tensor: torch.Tensor) -> str:
    data = tensor.detach().cpu().contiguous()
    if data.dtype == torch.bfloat16:
        data = data.view(torch.int16)
    return hashlib.sha256(data.numpy().tobytes()).hexdigest()[:16]


def check_identical(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Gather a hash of every named tensor from every rank; any difference is an error naming the tensors."""
    if not active():
        return
    digests = {name: tensor_digest(t) for name, t in sorted(tensors.items())}
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, digests)
    differ = sorted({name for other in gathered for name in set(other) | set(digests) if other.get(name) != digests.get(name)})
    if differ:
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        raise ExssnetError(f"data-parallel ranks disagree on {what}: {shown} differ between ranks "
                           "(non-deterministic kernels or a rank-dependent code path); the run stops here")


def has_batchnorm(module: nn.Module | None) -> bool:
    """True when `module` normalises with batch statistics in training (any BatchNorm, per-task ones included)."""
    kinds = (nn.modules.batchnorm._BatchNorm, MultitaskBatchNorm, PerTaskBatchNorm)
    return module is not None and any(isinstance(m, kinds) for m in module.modules())


def check_batch_size(batch_size: int, module: nn.Module | None, world: int | None = None) -> None:
    """Before training under data parallel: every process must get a row of each global batch, and 2 with BatchNorm.

    Rank r takes rows r, r + W, ... of a batch of B rows, so the smallest share is B // W rows: B < W leaves
    a process nothing to learn from, and B < 2W leaves one a single row, on which BatchNorm cannot train.
    """
    world = world_size() if world is None else world
    if world <= 1:
        return
    batchnorm = has_batchnorm(module)
    need = 2 * world if batchnorm else world
    if batch_size >= need:
        return
    fewest = batch_size // world
    why = (f"BatchNorm needs at least 2 rows per process to train and a process would get {fewest}" if batchnorm
           else "a process would get no rows")
    raise ExssnetError(f"--batch-size {batch_size} is the global batch, cut across {world} processes: {why}; "
                       f"use --batch-size {need} or more (or start fewer processes)")


def _batchnorms(module: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(n, m) for n, m in module.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None]


class DataParallel:
    """The per-phase synchronisation of one module and its trainable parameters (no-ops in one process)."""

    def __init__(self, module: nn.Module, params: Iterable[nn.Parameter]) -> None:
        self.active = active()
        self.module, self.params = module, list(params)
        self.shard = shard()
        self._bn_steps = ({n: int(m.num_batches_tracked) for n, m in _batchnorms(module)} if self.active else {})

    def augment_generator(self, generator: torch.Generator) -> torch.Generator:
        """`generator` in one process; under data parallel a generator of this rank's own, seeded from it.

        Augmentations draw per row, and ranks hold different row counts in a last, partial batch: drawing
        them from the shared generator would make the ranks' data orders drift apart in the next epoch.
        """
        if not self.active:
            return generator
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))  # the same draw on every rank
        return torch.Generator().manual_seed(seed + rank())

    def average_gradients(self, rows: int) -> None:
        """Replace each gradient by the row-weighted mean over ranks (one all-reduce of a flat buffer)."""
        if not self.active:
            return
        with_grad = [p for p in self.params if p.grad is not None]  # the same parameters on every rank
        if not with_grad:
            return
        grads = [p.grad for p in with_grad]
        flat = torch.cat([g.reshape(-1).float() * rows for g in grads]  # type: ignore[union-attr]
                         + [torch.tensor([float(rows)], device=grads[0].device)])  # type: ignore[union-attr]
        moved = flat.to(_device())
        dist.all_reduce(moved)
        flat = moved.to(flat.device)
        total = flat[-1]
        offset = 0
        for p, g in zip(with_grad, grads):  # type: ignore[assignment]
            n = g.numel()
            p.grad = (flat[offset : offset + n] / total).view_as(g).to(g.dtype)
            offset += n

    def sum(self, *values: float) -> list[float]:
        return all_sum(*values) if self.active else list(values)

    def average_batchnorm(self) -> None:
        """Average the running statistics of every BatchNorm this phase updated on any rank."""
        if not self.active:
            return
        norms = _batchnorms(self.module)
        changed = torch.tensor([int(m.num_batches_tracked) != self._bn_steps.get(n, -1) for n, m in norms],
                               dtype=torch.int32, device=_device())
        if changed.numel():
            dist.all_reduce(changed, op=dist.ReduceOp.MAX)
        for (name, norm), flag in zip(norms, changed.tolist()):
            if not flag:
                continue
            for buffer in (norm.running_mean, norm.running_var):
                moved = buffer.to(_device(), torch.float32)
                dist.all_reduce(moved)
                buffer.copy_(moved.div_(world_size()).to(buffer))
            steps = norm.num_batches_tracked.to(_device())
            dist.all_reduce(steps, op=dist.ReduceOp.MAX)
            norm.num_batches_tracked.copy_(steps.to(norm.num_batches_tracked))
