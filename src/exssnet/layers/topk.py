"""Top-k masks with a straight-through gradient, and 1-bit packing of finished masks.

The mask of a layer keeps the `k = ceil(density * numel)` entries with the largest `|score|`
(`topk_mask`: the indices `torch.topk` returns, so when entries tie at the k-th largest magnitude
torch.topk's deterministic choice decides, as it always did). `ThresholdTracker` computes the same
mask every training step without a full top-k: it warm-starts from the previous step's threshold and
corrects it with exact counts (a bracket, then the entries inside a narrow bracket read out; interpolation
safeguarded by bisection over the float's bit pattern for a wide one) until exactly k entries lie at or above
it, which makes the set unique. `torch.topk` still runs on a layer's
first step (to find the first threshold), when the k-th and (k+1)-th magnitudes are equal or NaN, and on every
step for scores that are not float32 on the CPU (e.g. CUDA, half precision). So its mask is `topk_mask`'s, bit for bit.
"""

from __future__ import annotations

import math
import struct
from typing import Callable

import numpy
import torch

_MAX_SEARCH_STEPS = 80  # more than the 32 bisection steps the bit pattern needs, plus interpolation
_BAND_ENTRIES = 4096  # a bracket holding at most this many entries (or 1/64 of the layer) is read out, not searched


def kept_count(numel: int, density: float) -> int:
    """Number of entries a layer keeps: ceil(density * numel), at least one."""
    return max(1, min(numel, math.ceil(density * numel)))


def topk_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    """Boolean mask of the `ceil(density * numel)` largest entries of `|scores|` (ties: as `torch.topk` picks)."""
    flat = scores.detach().abs().flatten()
    return largest_k(flat, kept_count(flat.numel(), density)).view_as(scores)


def largest_k(magnitudes: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean flat mask of the k largest entries of a flat tensor: the indices `torch.topk` returns."""
    mask = torch.zeros_like(magnitudes, dtype=torch.bool)
    if k >= magnitudes.numel():
        return mask.fill_(True)
    mask[torch.topk(magnitudes, k, sorted=False).indices] = True
    return mask


def _float_bits(value: float) -> int:
    """Bit pattern of `value` rounded to float32 (monotonic in the value for values >= 0)."""
    return struct.unpack("<i", struct.pack("<f", value))[0]


def _f32(value: float) -> float:
    """`value` rounded to the nearest float32 (what a comparison with a float32 tensor uses)."""
    return _bits_float(_float_bits(value))


def _bits_float(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<i", bits))[0]


class ThresholdTracker:
    """Exact top-k of a layer's `|scores|` each step, warm-started from the previous step's threshold.

    A count `sum(|s| >= t)` is one numpy comparison into 1-byte bools and a count of them; a full top-k
    costs ~20-70x more on a CPU. The previous threshold moved by its last move is counted first
    (thresholds drift steadily while scores train); a Newton step with the previous step's local slope
    (entries per unit of |score| near the threshold) brackets the new one. The entries of a narrow bracket
    [lo, hi) are where the two counts' booleans differ: the new threshold is picked among them (a wide
    bracket is first narrowed by interpolation safeguarded by bisection over the float32 bit pattern).
    About 2 counts per large layer and step in `benchmarks/step_ratio.py`'s LeNet SupSup and WSN steps
    (about 4.5 when every bracket was searched by interpolation). The start only changes how many counts it
    takes, never the mask. Float32 tensors on the CPU take this path; other devices and dtypes use `largest_k`.
    """

    overshoot = 1.25  # the first Newton step goes this much further, so that it usually brackets

    def __init__(self) -> None:
        self.threshold: float | None = None
        self.slope = 0.0  # entries per unit of |score| around the threshold, from the last search
        self.move = 0.0  # how far the threshold moved in the last search: the next search starts that much further
        self._buffer: torch.Tensor | None = None
        self._scratch: torch.Tensor | None = None  # |scores| in the forward, sign(scores) in the backward
        self._spare: tuple | None = None  # a joint weight given back: (tensor, its version, base, base version, index)

    @property
    def buffers(self) -> list[torch.Tensor]:
        """Every tensor the tracker keeps between steps (for memory accounting)."""
        spare = self._spare[0] if self._spare is not None else None
        return [t for t in (self._buffer, self._scratch, spare) if t is not None]

    def reset(self) -> None:
        self.threshold, self.slope, self.move = None, 0.0, 0.0
        self._buffer, self._scratch, self._spare = None, None, None

    def scratch(self, like: torch.Tensor) -> torch.Tensor:
        """A reused tensor shaped like `like`, for a value needed only within one forward or backward call.

        Reusing it spares a fresh allocation of the layer's size per call; every fresh large block costs
        page faults on a CPU (glibc returns freed blocks of this size to the kernel).
        """
        scratch = self._scratch
        if scratch is None or scratch.shape != like.shape or scratch.dtype != like.dtype or scratch.device != like.device:
            scratch = self._scratch = torch.empty_like(like, memory_format=torch.contiguous_format)
        return scratch

    def keep(self, mask: torch.Tensor) -> torch.Tensor:
        """Take a mask `float_mask` returned out of the tracker's hands: the next call writes a new buffer.

        Cheaper than a copy when the mask is given back (`give_back`) before the next step.
        """
        if self._buffer is not None and mask.data_ptr() == self._buffer.data_ptr():
            self._buffer = None
        return mask

    def give_back(self, mask: torch.Tensor) -> None:
        """Let the tracker reuse a kept mask's memory (the caller no longer reads it)."""
        if self._buffer is None:
            self._buffer = mask.reshape(-1)

    def joint_weight(self, base: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """A tensor equal to `base` except at the flat entries `index` (to be overwritten by the caller).

        The weight given back by `give_back_weight` when it was made from these very `base` and `index` and
        nothing changed since (versions), else a copy of `base`: the copy of the whole base each step is spared.
        """
        spare, self._spare = self._spare, None
        if spare is not None:
            weight, version, owner, owner_version, owner_index = spare
            if owner is base and owner_index is index and owner_version == base._version and version == weight._version:
                return weight
        return base.clone()

    def give_back_weight(self, weight: torch.Tensor, base: torch.Tensor, index: torch.Tensor) -> None:
        """Let `joint_weight` reuse `weight` (made from `base`, differing only at `index`; no longer read)."""
        self._spare = (weight, weight._version, base, base._version, index)

    def float_mask(self, magnitudes: torch.Tensor, k: int) -> torch.Tensor:
        """0/1 float mask (dtype of `magnitudes`) of the k largest entries, ties as `torch.topk` breaks them.

        The returned tensor may be reused by the next call: copy it, or `keep` it, to keep it.
        """
        flat = magnitudes.reshape(-1)
        n = flat.numel()
        if k >= n:
            return torch.ones_like(magnitudes)
        if flat.dtype != torch.float32 or flat.device.type != "cpu":
            return largest_k(flat, k).to(magnitudes.dtype).view_as(magnitudes)
        buffer = self._buffer  # a mask given back (`give_back`) may come from another device or dtype
        if buffer is None or buffer.shape != flat.shape or buffer.dtype != flat.dtype or buffer.device != flat.device:
            buffer = self._buffer = torch.empty_like(flat)
        array = flat.detach().numpy()

        def count(value: float) -> tuple[int, numpy.ndarray]:
            # numpy writes the comparison as 1-byte bools and counts them: half the memory traffic of a
            # float32 0/1 tensor and its sum (value is a float32 value, so the comparison is torch.ge's)
            above = numpy.greater_equal(array, numpy.float32(value))
            return int(numpy.count_nonzero(above)), above

        if self.threshold is None:
            found = self._search_exact(flat, k)
        else:
            try:
                found = self._search_warm(k, count, array)
            except OverflowError:  # a threshold beyond float32's range: NaN or huge scores
                found = None
        if found is None:  # ties straddle the k-th value (or NaN): the exact rule
            return largest_k(flat, k).to(flat.dtype).view_as(magnitudes)
        self.move = found - self.threshold if self.threshold is not None else 0.0
        self.threshold = found
        torch.ge(flat, found, out=buffer)
        return buffer.view_as(magnitudes)

    def _search_exact(self, flat: torch.Tensor, k: int) -> float | None:
        """First step: the k-th largest value by top-k; None if it ties with the (k+1)-th."""
        extra = max(1, min(flat.numel() - k, k // 50))
        values = torch.topk(flat, k + extra, sorted=True).values
        kth, next_, far = float(values[k - 1]), float(values[k]), float(values[k + extra - 1])
        if not kth > next_:
            return None
        self.slope = extra / (kth - far) if kth > far else 0.0
        return kth

    def _search_warm(self, k: int, count: Callable[[float], tuple[int, numpy.ndarray]],
                     array: numpy.ndarray) -> float | None:
        """A float32 value t with exactly k entries >= t, searched from the previous threshold; None on ties.

        `count(v)` gives the number of entries >= v and which ones (booleans). Once a bracket [lo, hi) holds
        few entries, they are read out (the two comparisons differ exactly there) and t is picked among them.
        """
        assert self.threshold is not None
        # thresholds drift steadily while scores train: start where the last move would take it
        value = self.threshold
        if self.move and value + self.move > 0:
            value = _f32(value + self.move)
        c, above = count(value)
        if c == k:
            return value
        # Newton step with the last slope, overshooting a little so that one probe brackets
        step = self.overshoot * abs(c - k) / self.slope if self.slope > 0 else max(abs(value) * 1e-3, 1e-30)
        step = max(step, abs(value) * 1e-7, 1e-30)
        # bracket: counts fall as the threshold rises; lo keeps > k entries, hi keeps < k
        if c > k:
            lo, c_lo, lo_set = value, c, above
            hi = _f32(value + step)
            c_hi, hi_set = count(hi)
            while c_hi > k:
                step *= 4
                lo, c_lo, lo_set = hi, c_hi, hi_set
                hi = _f32(lo + step)
                c_hi, hi_set = count(hi)
        else:
            hi, c_hi, hi_set = value, c, above
            lo = _f32(max(value - step, 0.0))
            c_lo, lo_set = count(lo)
            while c_lo < k:
                if lo == 0.0:
                    return None  # fewer than k entries >= 0: NaN scores
                step *= 4
                hi, c_hi, hi_set = lo, c_lo, lo_set
                lo = _f32(max(hi - step, 0.0))
                c_lo, lo_set = count(lo)
        if hi > lo:
            self.slope = (c_lo - c_hi) / (hi - lo)
        if c_lo == k:
            return lo
        if c_hi == k:
            return hi
        band_limit = max(_BAND_ENTRIES, array.size // 64)
        last_side, stalls = 0, 0
        for _ in range(_MAX_SEARCH_STEPS):
            if c_lo - c_hi <= band_limit:
                return _pick_in_band(array, lo_set, hi_set, k - c_hi)
            lo_bits, hi_bits = _float_bits(lo), _float_bits(hi)
            if hi_bits - lo_bits <= 1:
                return None  # entries tie at lo: the k-th and (k+1)-th values are equal
            if stalls >= 2:  # interpolation keeps landing on one side: halve the bit range instead
                bits, stalls = (lo_bits + hi_bits) // 2, 0
            else:
                guess = lo + (hi - lo) * (c_lo - k) / (c_lo - c_hi)
                bits = min(max(_float_bits(guess), lo_bits + 1), hi_bits - 1)
            middle = _bits_float(bits)
            c, above = count(middle)
            if c == k:
                return middle
            side = 1 if c > k else -1
            stalls = stalls + 1 if side == last_side else 0
            last_side = side
            if c > k:
                lo, c_lo, lo_set = middle, c, above
            else:
                hi, c_hi, hi_set = middle, c, above
        return None


def _pick_in_band(array: numpy.ndarray, lo_set: numpy.ndarray, hi_set: numpy.ndarray, rank: int) -> float | None:
    """The `rank`-th largest of the entries in [lo, hi) (those >= lo but not >= hi), when the (rank+1)-th is
    smaller: then exactly `rank` of them, plus every entry >= hi, lie at or above it. None when they tie."""
    values = array[numpy.flatnonzero(lo_set ^ hi_set)]
    size = values.size
    assert 1 <= rank < size  # hi keeps fewer than k entries, lo more
    values = numpy.partition(values, (size - rank - 1, size - rank))
    value, below = values[size - rank], values[size - rank - 1]
    return float(value) if value > below else None


class _ScoreMaskedWeight(torch.autograd.Function):
    """`weight * topk01(|scores|)` in one op; straight-through: d/dscores = grad * weight * sign(scores)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, scores: torch.Tensor, tracker: ThresholdTracker, k: int):  # type: ignore[override]
        # |scores| goes to the tracker's scratch tensor: it is only read within this call
        mask = tracker.float_mask(torch.abs(scores.detach(), out=tracker.scratch(scores)), k)
        ctx.tracker = tracker
        if ctx.needs_input_grad[0]:
            mask = mask.clone()  # the tracker reuses its buffer next step
            ctx.save_for_backward(weight, scores, mask)
        else:
            ctx.save_for_backward(weight, scores)
        return weight * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        weight, scores, *mask = ctx.saved_tensors
        grad_weight = grad * mask[0] if ctx.needs_input_grad[0] else None
        grad_scores = None
        if ctx.needs_input_grad[1]:
            # sign(scores) in the tracker's scratch, unless this backward is itself recorded (create_graph),
            # where a later step would overwrite a tensor the recorded graph keeps
            sign = scores.sign() if torch.is_grad_enabled() else torch.sign(scores, out=ctx.tracker.scratch(scores))
            grad_scores = torch.mul(grad, weight).mul_(sign)
        return grad_weight, grad_scores, None, None


class _JointMaskedWeight(torch.autograd.Function):
    """`scatter_compact(compact, base, index) * topk01(|scores|)` in one op (WSN's weight), straight-through.

    The same values and gradients as the composition of `_ScatterCompact` and `_ScoreMaskedWeight`;
    it spares the full-size copy of the mask (the tracker's buffer is kept until the backward) and, for a
    layer without free entries, the copy of the base.
    """

    @staticmethod
    def forward(ctx, compact: torch.Tensor, scores: torch.Tensor, base: torch.Tensor, index: torch.Tensor,  # type: ignore[override]
                tracker: ThresholdTracker, k: int) -> torch.Tensor:
        mask = tracker.float_mask(torch.abs(scores.detach(), out=tracker.scratch(scores)), k)
        weight = base
        if index.numel():
            weight = tracker.joint_weight(base, index)
            weight.view(-1).scatter_(0, index, compact)  # the indices are distinct: as _ScatterCompact
        out = weight * mask
        ctx.tracker, ctx.base = tracker, base
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(weight, scores, index, tracker.keep(mask))
        else:
            ctx.save_for_backward(weight, scores, index)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        weight, scores, index, *mask = ctx.saved_tensors
        grad_compact = grad_scores = None
        recorded = torch.is_grad_enabled()  # create_graph: the recorded graph keeps what it reads
        if ctx.needs_input_grad[0]:
            grad_compact = (grad * mask[0]).reshape(-1).index_select(0, index)
        if ctx.needs_input_grad[1]:
            sign = scores.sign() if recorded else torch.sign(scores, out=ctx.tracker.scratch(scores))
            grad_scores = torch.mul(grad, weight).mul_(sign)
        if not recorded:  # what this call read may serve the next forward (a retained graph's second
            # backward after that forward fails loudly: the in-place writes bump the versions autograd checks)
            if mask:
                ctx.tracker.give_back(mask[0])
            if index.numel():
                ctx.tracker.give_back_weight(weight, ctx.base, index)
        return grad_compact, grad_scores, None, None, None, None


def joint_masked_weight(compact: torch.Tensor, base: torch.Tensor, index: torch.Tensor, scores: torch.Tensor,
                        tracker: ThresholdTracker, k: int) -> torch.Tensor:
    """WSN's effective weight: `base` with the flat entries `index` taken from `compact`, times the top-k
    mask of `|scores|`; equal, value and gradient, to `score_masked_weight(scatter_compact(...), scores, ...)`."""
    return _JointMaskedWeight.apply(compact, scores, base, index, tracker, k)


def score_masked_weight(weight: torch.Tensor, scores: torch.Tensor, tracker: ThresholdTracker, k: int) -> torch.Tensor:
    """Effective weight of the mask phase: `weight` times the top-k mask of `|scores|` (straight-through).

    Equal, value and gradient, to `weight * topk01(|scores|)` with the gradient passed straight through
    the top-k (`exssnet.layers.masked.reference_forward`; the tests check it).
    """
    return _ScoreMaskedWeight.apply(weight, scores, tracker, k)


class _ScatterCompact(torch.autograd.Function):
    """`base` with the flat entries `index` replaced by `compact`; only `compact` gets gradient."""

    @staticmethod
    def forward(ctx, compact: torch.Tensor, base: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(index)
        out = base.clone()
        out.view(-1).scatter_(0, index, compact)  # the indices are distinct: as index_copy_, ~3x faster on the CPU
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        return grad.reshape(-1).index_select(0, index), None, None


def scatter_compact(compact: torch.Tensor, base: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Weight of the weight phase: the frozen `base` with the trainable entries taken from `compact`."""
    return _ScatterCompact.apply(compact, base, index)


_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """Pack a boolean mask into uint8, 1 bit per entry, most significant bit first (numpy.packbits order)."""
    flat = mask.detach().flatten().to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=flat.device)
    return (flat.view(-1, 8) * weights).sum(dim=1, dtype=torch.uint8)


def unpack_mask(packed: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Inverse of `pack_mask`: a boolean tensor of `shape` on the device of `packed`."""
    numel = math.prod(shape)
    if packed.numel() != (numel + 7) // 8:
        raise ValueError(f"packed mask has {packed.numel()} bytes, expected {(numel + 7) // 8} for shape {tuple(shape)}")
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    bits = (packed.to(torch.uint8).unsqueeze(1) >> shifts) & 1
    return bits.flatten()[:numel].view(*shape).bool()


class _SuperposedMask(torch.autograd.Function):
    """`sum_i alphas[i] * M_i` from 1-bit packed masks; the backward unpacks one mask at a time.

    Memory stays O(|W|) floats plus the packed bits, whatever the number of masks.
    """

    @staticmethod
    def forward(ctx, alphas: torch.Tensor, shape: torch.Size, dtype: torch.dtype, *packed: torch.Tensor):  # type: ignore[override]
        ctx.shape, ctx.dtype = shape, dtype
        ctx.save_for_backward(*packed)
        mixed = torch.zeros(shape, dtype=dtype, device=alphas.device)
        for alpha, bits in zip(alphas.to(dtype), packed):
            mixed.add_(unpack_mask(bits, shape).to(dtype) * alpha)
        return mixed

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        grads = [
            (grad_output * unpack_mask(bits, ctx.shape).to(grad_output.dtype)).sum() for bits in ctx.saved_tensors
        ]
        return (torch.stack(grads), None, None, *([None] * len(ctx.saved_tensors)))


def superposed_mask(
    alphas: torch.Tensor, packed: list[torch.Tensor], shape: torch.Size, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Float mask `sum_i alphas[i] * unpack(packed[i])`, differentiable w.r.t. `alphas`."""
    if alphas.shape != (len(packed),):
        raise ValueError(f"alphas has shape {tuple(alphas.shape)}, expected ({len(packed)},)")
    return _SuperposedMask.apply(alphas, torch.Size(shape), dtype, *packed)
