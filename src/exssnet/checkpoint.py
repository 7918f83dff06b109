"""Save and load a supermask model as a folder: `config.json` + `model.safetensors` (never a pickle).

    save_pretrained(net, "ckpt", model_name="lenet", input_shape=(1, 28, 28))
    net = from_pretrained("ckpt")          # a SupermaskNet with every finished task
    net.predict(x, task=2)

The checkpoint is a codec around `net.state_dict()`. The tensors file (format version 2) holds the
shared weights once (`weight.<layer>`), and per finished task t: its masks coded losslessly near their
entropy (`masks.<t>`: the Golomb codes of the gaps between kept weights of every masked layer,
concatenated in layer order, ~0.47 bit per weight at density 0.1, see `exssnet.layers.maskcode`), its
BatchNorm statistics concatenated over the BatchNorm layers (`bn.<t>.running_mean|running_var`,
`bn.<t>.num_batches_tracked` one per layer), its dense head with `head="per-task"` (`head.<t>.weight`,
`head.<t>.bias`; config.json's `head`) and, only when asked for, its float scores (`scores.<layer>.<t>`,
needed by KKT). Any other parameter or buffer of the model is stored as is
(`state.<key>`); the union of the masks is recomputed, and the task list is `config.json`'s
`task_classes`; `init` records how the wrap chose the weights (it decides whether BatchNorm affine
values are part of the model). Loading decodes all this back into a state dict and hands it to
`to_supermask(build_model(...)).load_state_dict(..., strict=True)`. Format version 1 (pre-1.0,
bit-packed masks) is no longer read.
Loading validates every key, shape, dtype, code, checksum and mask density, and turns any problem
into one `ExssnetError`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from exssnet import __version__
from exssnet.errors import ExssnetError
from exssnet.layers.batchnorm import MultitaskBatchNorm
from exssnet.layers.maskcode import decode_masks, encode_mask
from exssnet.layers.task_head import TaskHeadLinear
from exssnet.layers.topk import kept_count, pack_mask
from exssnet.models import build_model
from exssnet.models.contract import find_classifier
from exssnet.supermask import HEADS, INITS, Phase, SupermaskNet, WrapWarning, to_supermask

if TYPE_CHECKING:
    from exssnet.data.tasks import Benchmark

CONFIG_FILE = "config.json"
TENSORS_FILE = "model.safetensors"
FORMAT = "exssnet-supermask"
METHOD_STATE_FORMAT = "exssnet-method-state"  # a baseline run's resume state (exssnet.methods.method_state)
FORMAT_VERSION = 2  # 2: Golomb-coded masks (version 1, bit-packed masks before 1.0, is no longer read)
READABLE_VERSIONS = (2,)
BN_STATS = ("running_mean", "running_var", "num_batches_tracked")
# bounds on untrusted config.json values, checked before any work is sized by them
MAX_INPUT_SIZE = 2**26
MAX_CLASSES = 2**20


def save_pretrained(
    net: SupermaskNet,
    directory: str | Path,
    model_name: str,
    input_shape: tuple[int, ...],
    save_scores: bool = False,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `net`'s finished tasks to `directory` atomically (a temp folder, then a rename).

    `model_name` and `input_shape` are what `exssnet.models.build_model` needs to rebuild the dense
    architecture; `metadata` is any JSON-able dict kept in the config (e.g. class names per task).
    An existing checkpoint is replaced only with `overwrite=True`.
    """
    directory = Path(directory)
    if net.tasks and net.tasks[-1].phase is not Phase.DONE:
        raise ExssnetError(f"task {net.num_tasks - 1} is not finished; only finished tasks can be saved")
    if directory.exists() and not overwrite:
        raise ExssnetError(f"{directory} already exists; pass overwrite=True (--overwrite) or choose another folder")
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exssnet_version": __version__,
        "model_name": model_name,
        "input_shape": [int(d) for d in input_shape],
        "num_classes": head_classes(net),
        "density": net.density,
        "keep_scores": net.keep_scores,
        "init": net.init,
        "head": net.head,
        "has_scores": bool(save_scores),
        "task_classes": [task.num_classes for task in net.tasks],
        "metadata": metadata or {},
    }
    if net.nested_masks:  # PackNet: task t's mask holds earlier tasks' weights, so its count is not the density's
        config["nested_masks"] = True
    tensors = state_tensors(net, save_scores)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file(tensors, str(tmp / TENSORS_FILE), metadata={"format": FORMAT})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        replace_dir(tmp, directory)
    except OSError as exc:  # e.g. a full disk: an older checkpoint at `directory` is left as it was
        raise ExssnetError(f"cannot write checkpoint {directory}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def replace_dir(source: Path, target: Path) -> None:
    """Move folder `source` to `target`; an old `target` is removed only after the move succeeded."""
    if not target.exists():
        os.replace(source, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)


def head_classes(net: SupermaskNet) -> int:
    """Output width of the model (the shared head every task slices)."""
    return int(find_classifier(net.model)[1].out_features)


def state_tensors(net: SupermaskNet, save_scores: bool) -> dict[str, torch.Tensor]:
    """Every tensor a checkpoint (format version 2) stores, by key, on the CPU and contiguous: `net.state_dict()` encoded."""
    state = _canonical(net, net.state_dict())
    tensors: dict[str, torch.Tensor] = {}
    consumed = {"_extra_state"}
    for name, layer in net.named_masked_layers():
        key = _layer_keys(name)
        tensors[f"weight.{name}"] = state[key("weight")]
        consumed |= {key("weight"), key("union")}
        consumed |= {k for k in state if k.startswith(key("masks.")) or k.startswith(key("scores."))}
        if save_scores:
            for t in range(net.num_tasks):
                if key(f"scores.{t}") not in state:
                    raise ExssnetError(f"task {t}'s scores were not kept (keep_scores=False); save without scores")
                tensors[f"scores.{name}.{t}"] = state[key(f"scores.{t}")]
    for t in range(net.num_tasks):
        tensors[f"masks.{t}"] = torch.cat([encode_mask(layer.mask_of(t)) for layer in net.masked_layers()])
        norms = named_norms(net)
        for stat in BN_STATS if norms else ():
            parts = [_norm_key(name, t, stat) for name, _ in norms]
            tensors[f"bn.{t}.{stat}"] = torch.cat([state[k].reshape(-1) for k in parts])
            consumed |= set(parts)
        for entry, key in _head_keys(net, t).items():
            tensors[f"head.{t}.{entry}"] = state[key]
            consumed.add(key)
    for key, value in state.items():
        if key not in consumed:
            tensors[f"state.{key}"] = value
    return {key: value.detach().cpu().contiguous() for key, value in tensors.items()}


def _layer_keys(name: str):
    """State-dict key of a masked layer's entry: `model.<name>.<entry>`."""
    return lambda entry: f"model.{name}.{entry}"


def _norm_key(name: str, task: int, stat: str) -> str:
    return f"model.{name}.norms.{task}.{stat}"


def _head_keys(net: SupermaskNet, task: int) -> dict[str, str]:
    """Checkpoint entry ("weight", "bias") -> state-dict key of `task`'s per-task head (empty with the masked head)."""
    keys = {}
    for name, module in net.model.named_modules():
        if isinstance(module, TaskHeadLinear):
            keys["weight"] = f"model.{name}.task_weight.{task}"
            if module.has_bias:
                keys["bias"] = f"model.{name}.task_bias.{task}"
    return keys


def _aliases(net: SupermaskNet) -> dict[str, str]:
    """State-dict key prefix of each module reached under a second name -> the prefix of its first name."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, module in net.model.named_modules(remove_duplicate=False):
        prefix = f"model.{name}." if name else "model."
        if id(module) in first:
            aliases[prefix] = first[id(module)]
        else:
            first[id(module)] = prefix
    return aliases


def _canonical(net: SupermaskNet, state: dict[str, Any]) -> dict[str, Any]:
    """`state` without the keys of modules reached under a second name (a shared layer is stored once)."""
    aliases = tuple(_aliases(net))
    return {key: value for key, value in state.items() if not key.startswith(aliases)} if aliases else dict(state)


def _with_aliases(net: SupermaskNet, state: dict[str, Any]) -> dict[str, Any]:
    """`state` with the keys of every second name of a shared module filled in from its first name."""
    out = dict(state)
    for alias, original in _aliases(net).items():
        out.update({alias + key[len(original):]: value for key, value in state.items() if key.startswith(original)})
    return out


def named_norms(net: SupermaskNet) -> list[tuple[str, MultitaskBatchNorm]]:
    return [(name, m) for name, m in net.model.named_modules() if isinstance(m, MultitaskBatchNorm)]


# ----- loading ---------------------------------------------------------------------------
def read_config(directory: str | Path) -> dict[str, Any]:
    """The validated `config.json` of a checkpoint folder."""
    directory = Path(directory)
    if not directory.is_dir():
        reason = "is not a folder" if directory.exists() else "does not exist"
        raise ExssnetError(f"checkpoint folder {directory} {reason}")
    path = directory / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExssnetError(f"{directory} is not an exssnet checkpoint: {CONFIG_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExssnetError(f"checkpoint config {path} is corrupted: {exc}") from None
    if isinstance(config, dict) and config.get("format") == METHOD_STATE_FORMAT:
        raise ExssnetError(f"{directory} is the resume state of a {config.get('method')!r} run, not a supermask model: "
                           "it only continues that run (exssnet run --out RUN_DIR --resume)")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ExssnetError(f"{path} is not an exssnet checkpoint config (format must be {FORMAT!r})")
    if config.get("format_version") not in READABLE_VERSIONS:
        raise ExssnetError(f"{path}: checkpoint format version {config.get('format_version')!r} is not supported "
                           f"(this exssnet reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    expected = {"model_name": str, "input_shape": list, "num_classes": int, "density": (int, float),
                "keep_scores": bool, "has_scores": bool, "task_classes": list, "metadata": dict}
    for key, kind in expected.items():
        if key not in config:
            raise ExssnetError(f"{path}: key {key!r} is missing")
        if not isinstance(config[key], kind) or (kind is not bool and isinstance(config[key], bool)):
            raise ExssnetError(f"{path}: key {key!r} has the wrong type ({type(config[key]).__name__})")
    for key in ("input_shape", "task_classes"):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in config[key]):
            raise ExssnetError(f"{path}: {key} must be a list of positive integers, got {config[key]!r}")
    if config.setdefault("head", "masked") not in HEADS:  # checkpoints before `head=` have the masked head
        raise ExssnetError(f"{path}: head must be one of {', '.join(map(repr, HEADS))}, got {config['head']!r}")
    if config.setdefault("init", "signed-constant") not in INITS:  # checkpoints before `init=` are signed-constant
        raise ExssnetError(f"{path}: init must be one of {', '.join(map(repr, INITS))}, got {config['init']!r}")
    if config["has_scores"] and not config["keep_scores"]:
        raise ExssnetError(f"{path}: has_scores needs keep_scores")
    if len(config["input_shape"]) > 4 or math.prod(config["input_shape"]) > MAX_INPUT_SIZE or config["num_classes"] > MAX_CLASSES:
        raise ExssnetError(f"{path}: input_shape {config['input_shape']} or num_classes {config['num_classes']} is "
                           "beyond what a checkpoint can hold (corrupted?)")
    if any(c > config["num_classes"] for c in config["task_classes"]):
        raise ExssnetError(f"{path}: a task has more classes than the head ({config['num_classes']})")
    return config


def read_tensors(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of the safetensors file; a truncated or garbage file becomes an ExssnetError."""
    path = directory / TENSORS_FILE
    if not path.is_file():
        raise ExssnetError(f"checkpoint {directory} is incomplete: {TENSORS_FILE} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ExssnetError(f"checkpoint tensors {path} are corrupted or truncated: {exc}") from None


def from_pretrained(directory: str | Path, device: str | torch.device = "cpu",
                    model: torch.nn.Module | None = None) -> SupermaskNet:
    """Rebuild a `SupermaskNet` (in eval mode) with every finished task of the checkpoint in `directory`.

    The model is built from the registry, or is `model` (your own instance of the saved architecture,
    as PEFT's `from_pretrained(base_model, dir)`: no registry needed; it is wrapped in place), and
    wrapped without tasks; the decoded state dict creates them and sets every tensor, frozen ones
    included (`load_state_dict(strict=True)`).
    """
    directory = Path(directory)
    config = read_config(directory)
    tensors = read_tensors(directory)
    stored = {key.rsplit(".", 1)[1] for key in tensors if key.startswith("masks.")}
    num_tasks = len(config["task_classes"])
    if num_tasks != len(stored):  # the tensors file bounds the work config.json may ask for
        raise ExssnetError(f"checkpoint {directory}: {CONFIG_FILE} lists {num_tasks} task(s), "
                           f"{TENSORS_FILE} holds masks of {len(stored)}")
    what = f"model {config['model_name']!r}" if model is None else f"the given {type(model).__name__}"
    try:
        dense = build_model(config["model_name"], tuple(config["input_shape"]), config["num_classes"]) if model is None else model
        with warnings.catch_warnings():  # every tensor is loaded below: the wrap's notes do not apply
            warnings.simplefilter("ignore", WrapWarning)
            net = to_supermask(dense, config["density"], keep_scores=config["keep_scores"], init=config["init"],
                               head=config["head"])
    except (ExssnetError, ValueError, RuntimeError, TypeError) as exc:
        hint = "" if model is not None else " (a model of your own: pass it, from_pretrained(dir, model=instance))"
        raise ExssnetError(f"checkpoint {directory}: cannot rebuild {what}: {exc}{hint}") from None
    if head_classes(net) != config["num_classes"]:
        raise ExssnetError(f"checkpoint {directory}: {what} does not end in a {config['num_classes']}-way head")
    expected = expected_tensors(net, num_tasks, config["has_scores"], config["task_classes"])
    nested = config.get("nested_masks") is True
    masks = check_tensors(directory, tensors, expected, config["density"], net, num_tasks, nested)
    state = decode_state(net, tensors, masks, config["task_classes"], config["has_scores"])
    net.load_state_dict(state, strict=True)
    net.nested_masks = nested
    return net.to(device).eval()


def expected_tensors(net: SupermaskNet, num_tasks: int, has_scores: bool,
                     task_classes: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Key -> a tensor of the dtype and shape a checkpoint of `num_tasks` tasks must hold for `net`'s
    architecture (`net` has no task yet; a mask code: any 1-D length; per-task heads as wide as `task_classes`)."""
    expected: dict[str, torch.Tensor] = {}
    consumed = {"_extra_state"}
    for name, layer in net.named_masked_layers():
        key = _layer_keys(name)
        consumed |= {key("weight"), key("union")}
        expected[f"weight.{name}"] = layer.weight.detach()
        for t in range(num_tasks) if has_scores else ():
            expected[f"scores.{name}.{t}"] = torch.empty(layer.weight.shape, dtype=torch.float32)
    norms = named_norms(net)
    for t in range(num_tasks):
        expected[f"masks.{t}"] = torch.empty(0, dtype=torch.uint8)
        if norms:
            features = sum(norm.num_features for _, norm in norms)
            expected[f"bn.{t}.running_mean"] = expected[f"bn.{t}.running_var"] = torch.empty(features)
            expected[f"bn.{t}.num_batches_tracked"] = torch.empty(len(norms), dtype=torch.long)
        for head in net.head_layers():
            classes = task_classes[t] if task_classes is not None else head.out_features
            expected[f"head.{t}.weight"] = torch.empty(classes, head.in_features)
            if head.has_bias:
                expected[f"head.{t}.bias"] = torch.empty(classes)
    for key, value in _canonical(net, net.state_dict()).items():
        if key not in consumed:
            expected[f"state.{key}"] = value
    return expected


def check_tensors(directory: Path, found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], density: float,
                  net: SupermaskNet, num_tasks: int, nested: bool = False) -> dict[tuple[str, int], torch.Tensor]:
    """Same keys, shapes and dtypes as the rebuilt model; masks decode and keep the density's count
    (not checked when `nested`: PackNet's masks hold earlier tasks' weights).

    Returns the decoded boolean masks by (layer name, task).
    """
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        parts = [f"missing {_few(missing)}" if missing else "", f"unexpected {_few(extra)}" if extra else ""]
        raise ExssnetError(
            f"checkpoint {directory} does not match its architecture/config: " + "; ".join(p for p in parts if p)
        )
    for key, want in expected.items():
        got = found[key]
        variable = key.startswith("masks.")  # a code's length depends on the mask
        if got.dtype != want.dtype or (got.dim() != 1 if variable else got.shape != want.shape):
            raise ExssnetError(
                f"checkpoint {directory}: tensor {key} is {got.dtype} {tuple(got.shape)}, "
                f"the architecture needs {want.dtype} {tuple(want.shape)}"
            )
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise ExssnetError(f"checkpoint {directory}: tensor {key} holds NaN or infinite values")
    masks: dict[tuple[str, int], torch.Tensor] = {}
    layers = list(net.named_masked_layers())
    for t in range(num_tasks):
        try:
            decoded = decode_masks(found[f"masks.{t}"], [layer.weight.shape for _, layer in layers])
        except ValueError as exc:
            raise ExssnetError(f"checkpoint {directory}: mask code masks.{t} is corrupted ({exc})") from None
        for (name, _), mask in zip(layers, decoded):
            if not nested:
                _check_count(directory, f"task {t}'s mask of layer {name}", mask, density)
            masks[(name, t)] = mask
    return masks


def _check_count(directory: Path, what: str, mask: torch.Tensor, density: float) -> None:
    numel = mask.numel()
    kept, want = int(mask.sum()), kept_count(numel, density)
    if kept != want:
        raise ExssnetError(
            f"checkpoint {directory}: {what} keeps {kept} of {numel} weights, but density {density} keeps {want} "
            "(the checkpoint was made with another density or is corrupted)"
        )


def _few(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def decode_state(net: SupermaskNet, tensors: dict[str, torch.Tensor], masks: dict[tuple[str, int], torch.Tensor],
                 task_classes: list[int], has_scores: bool) -> dict[str, Any]:
    """The state dict `net` (same architecture, no task yet) loads to hold the checkpoint's finished tasks.

    Checked tensors and decoded masks in; masks packed 1 bit per weight, the union recomputed, the
    BatchNorm statistics split per layer, the task list as the net's extra state.
    """
    state: dict[str, Any] = {}
    for name, layer in net.named_masked_layers():
        key = _layer_keys(name)
        state[key("weight")] = tensors[f"weight.{name}"]
        union = torch.zeros(layer.weight.shape, dtype=torch.bool)
        for t in range(len(task_classes)):
            mask = masks[(name, t)]
            state[key(f"masks.{t}")] = pack_mask(mask)
            union |= mask
            if has_scores:
                state[key(f"scores.{t}")] = tensors[f"scores.{name}.{t}"]
        state[key("union")] = union
    for t in range(len(task_classes)):
        offsets = {stat: 0 for stat in BN_STATS}
        for name, norm in named_norms(net):
            for stat in BN_STATS:
                size = 1 if stat == "num_batches_tracked" else norm.num_features
                flat = tensors[f"bn.{t}.{stat}"][offsets[stat]: offsets[stat] + size]
                state[_norm_key(name, t, stat)] = flat.reshape(()) if stat == "num_batches_tracked" else flat
                offsets[stat] += size
        for entry, key in _head_keys(net, t).items():
            state[key] = tensors[f"head.{t}.{entry}"]
    for key, value in tensors.items():
        if key.startswith("state."):
            state[key[len("state."):]] = value
    state["_extra_state"] = {"tasks": [{"num_classes": c, "phase": "done"} for c in task_classes]}
    return _with_aliases(net, state)


def checkpoint_bytes(directory: str | Path) -> int:
    """Bytes on disk of a checkpoint folder (both files)."""
    return sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())


def load_compatible(directory: str | Path, benchmark: "Benchmark", *, model: str, density: float,
                    keep_scores: bool, head: str = "masked", init: str = "signed-constant") -> SupermaskNet:
    """`from_pretrained`, refusing a checkpoint made for another model, density, head, weight init or benchmark
    shape."""
    saved = read_config(directory)
    wanted = {"model_name": model, "density": density, "keep_scores": keep_scores, "head": head, "init": init,
              "input_shape": list(benchmark.input_shape), "num_classes": benchmark.max_classes}
    for key, value in wanted.items():
        if saved[key] != value:
            raise ExssnetError(f"checkpoint {directory} was made with {key}={saved[key]!r}, this run needs {value!r}")
    learned = saved["task_classes"]
    if len(learned) > len(benchmark.tasks):
        raise ExssnetError(f"checkpoint {directory} has {len(learned)} tasks, the benchmark only {len(benchmark.tasks)}")
    for t, num_classes in enumerate(learned):
        if benchmark.tasks[t].num_classes != num_classes:
            raise ExssnetError(f"checkpoint {directory}: task {t} has {num_classes} classes, the benchmark's {benchmark.tasks[t].num_classes}")
    return from_pretrained(directory)
